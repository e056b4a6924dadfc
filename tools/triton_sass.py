"""Static proxies of the Triton cell-list kernel on Hopper, measured without a GPU.

Compiles the kernel variants flock ships (``flock.neighbors.triton_grid``) for a target
(default sm_90) with the installed Triton, then reads per variant, from Triton's own
bundled tools: registers and spill bytes (``ptxas --verbose`` on the PTX), ``BAR.SYNC``
count in the whole kernel and in the candidate loop, and the SASS instructions of the
candidate loop body (``cuobjdump --dump-sass``; the loop is the innermost backward
branch around the square root). One query per lane, so a loop iteration of one warp
weighs 32 candidate pairs: warp-instructions per pair = body / 32.

    python tools/triton_sass.py [--arch sm_90] [--json FILE]

``noise_philox`` is the noise stream's Philox kernel (``flock.noise_triton``): registers,
spills and SASS size only (it has no candidate loop).

Run it without ``TRITON_INTERPRET`` (the interpreter compiles nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

# (name, D, table columns, has velocities, kinds, flags...) of the shipped variants
VARIANTS = {
    "circles3d_f32_open": dict(D=3, kinds=("circles", "flat"), open=(1, 1), excl=(1, 1), extra=(0, 0),
                               periodic=False, fov=(0, 0), f64=False),
    "circles3d_f32_wrap": dict(D=3, kinds=("circles", "flat"), open=(1, 1), excl=(1, 1), extra=(0, 0),
                               periodic=True, fov=(0, 0), f64=False),
    "boids2d_f32_wrap": dict(D=2, kinds=("flat", "flat", "inverse_square"), open=(0, 0, 0), excl=(1, 1, 1),
                             extra=(1, 1, 1), periodic=True, fov=(0, 0, 0), f64=False),
    "boids3d_f32_fov": dict(D=3, kinds=("flat", "flat", "inverse_square"), open=(0, 0, 0), excl=(1, 1, 1),
                            extra=(1, 1, 1), periodic=True, fov=(1, 1, 1), f64=False),
    "netlogo2d_f32_wrap": dict(D=2, kinds=("flat", "inverse"), open=(0, 0), excl=(1, 1), extra=(1, 1),
                               periodic=True, fov=(0, 0), f64=False),
    "meanshift2d_f32": dict(D=2, kinds=("gaussian",), open=(0,), excl=(0,), extra=(0,), periodic=False,
                            fov=(0,), f64=False),
    # the boid rules finished in the kernel's epilogue (triton_grid.EPILOGUES): each channel sums
    # only the columns its rule reads, and the kernel writes the [N, D] update
    "seed2d_f32_wrap_epilogue": dict(D=2, kinds=("flat", "flat"), open=(0, 0), excl=(1, 1), periodic=True,
                                     fov=(0, 0), f64=False, rule="seed"),
    "seed3d_f32_fov_epilogue": dict(D=3, kinds=("flat", "flat"), open=(0, 0), excl=(1, 1), periodic=True,
                                    fov=(1, 1), f64=False, rule="seed"),
    "reynolds2d_f32_wrap_epilogue": dict(D=2, kinds=("flat", "flat", "inverse_square"), open=(0, 0, 0),
                                         excl=(1, 1, 1), periodic=True, fov=(0, 0, 0), f64=False,
                                         rule="reynolds"),
    "reynolds3d_f32_fov_epilogue": dict(D=3, kinds=("flat", "flat", "inverse_square"), open=(0, 0, 0),
                                        excl=(1, 1, 1), periodic=True, fov=(1, 1, 1), f64=False,
                                        rule="reynolds"),
    "mesa2d_f32_wrap_epilogue": dict(D=2, kinds=("flat", "flat"), open=(0, 0), excl=(1, 1), periodic=True,
                                     fov=(0, 0), f64=False, rule="mesa"),
}


# the noise stream's Philox4x32-10 kernel (flock.noise_triton): no candidate loop, so registers,
# spills and the SASS size only
NOISE_VARIANT = "noise_philox"


def _bits(values, width=1):
    out = 0
    for k, v in enumerate(values):
        out |= int(v) << (width * k)
    return out


def compile_variant(spec: dict, arch: int, block: int = 64):
    """Compiled kernel (``triton.compile``) of one variant for ``sm_<arch>``."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    from flock.neighbors import triton_grid as tg

    fn = JITFunction(tg._KERNEL_SOURCES["cell_sum"], do_not_specialize=list(tg._NO_SPECIALIZE))
    dt = "fp64" if spec["f64"] else "fp32"
    dim = spec["D"]
    rule = spec.get("rule")
    if rule is None:
        rule_id, extra, positions = 0, spec["extra"], (1,) * len(spec["kinds"])
    else:
        rule_id, _, cols = tg.EPILOGUES[rule]
        extra, positions = [c[1] for c in cols], [c[0] for c in cols]
    has_vel = any(extra)
    consts = dict(D=dim, C=dim + (dim if has_vel else 0), VEL=has_vel, F=0, K=len(spec["kinds"]),
                  KINDS=_bits([tg.KIND_IDS[k] for k in spec["kinds"]], 3), EXCL=_bits(spec["excl"]),
                  OPEN=_bits(spec["open"]), FOVS=_bits(spec["fov"]), EXTRA=_bits(extra), POSS=_bits(positions),
                  RULE=rule_id, PERIODIC=spec["periodic"], WIDE=False, F64=spec["f64"], BLOCK=block)
    ptr_types = {"qcell_ptr": "*i32", "qown_ptr": "*i32", "qorder_ptr": "*i64", "cellptr_ptr": "*i32"}
    sig = {}
    for name in fn.arg_names:
        if name in consts:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = ptr_types.get(name, "*" + dt)
        else:
            sig[name] = "i32"
    constexprs = {(fn.arg_names.index(k),): v for k, v in consts.items()}
    src = ASTSource(fn=fn, signature=sig, constexprs=constexprs)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32),
                          options={"enable_fp_fusion": True, "num_warps": max(1, block // 32)})


def compile_noise(arch: int):
    """Compiled ``flock.noise_triton`` kernel (10 rounds, its BLOCK) for ``sm_<arch>``."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    from flock import noise, noise_triton

    fn = JITFunction(noise_triton.KERNEL_SOURCE, do_not_specialize=["total", "n_rows", "blocks"])
    consts = {"ROUNDS": noise.ROUNDS, "BLOCK": noise_triton.BLOCK}
    sig = {name: "constexpr" if name in consts else ("*i64" if name.endswith("_ptr") else "i32")
           for name in fn.arg_names}
    src = ASTSource(fn=fn, signature=sig, constexprs={(fn.arg_names.index(k),): v for k, v in consts.items()})
    return triton.compile(src, target=GPUTarget("cuda", arch, 32),
                          options={"enable_fp_fusion": True, "num_warps": max(1, noise_triton.BLOCK // 32)})


def _tool(name: str) -> str:
    import triton

    return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", name)


def _ptxas(arch: int) -> str:
    """The ptxas Triton itself compiles with for ``sm_<arch>``."""
    from triton.backends.nvidia import compiler

    try:
        return compiler.get_ptxas(arch).path
    except TypeError:  # older Tritons take no target
        return compiler.get_ptxas().path


def analyse(kernel, arch: int) -> dict:
    """Registers, spills, barriers and the candidate loop's SASS size of a compiled kernel."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        ptx = os.path.join(tmp, "k.ptx")
        cubin = os.path.join(tmp, "k.cubin")
        with open(ptx, "w") as f:
            f.write(kernel.asm["ptx"])
        with open(cubin, "wb") as f:
            f.write(kernel.asm["cubin"])
        target = re.search(r"\.target\s+(sm_\w+)", kernel.asm["ptx"]).group(1)     # sm_90a on Hopper
        res = subprocess.run([_ptxas(arch), "--verbose", f"--gpu-name={target}", ptx, "-o",
                              os.path.join(tmp, "v.cubin")], capture_output=True, text=True)
        info = res.stderr + res.stdout
        m = re.search(r"Used (\d+) registers", info)
        out["registers"] = int(m.group(1)) if m else None
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", info)
        out["spill_bytes"] = (int(m.group(1)) + int(m.group(2))) if m else None
        sass = subprocess.run([_tool("cuobjdump"), "--dump-sass", cubin], capture_output=True, text=True).stdout
    lines = []
    for line in sass.splitlines():
        m = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
        if m:
            lines.append((int(m.group(1), 16), m.group(2)))
    out["sass_instructions"] = len(lines)
    out["bar_sync"] = sum("BAR.SYNC" in op or "BAR.RED" in op for _, op in lines)
    # loops: backward branches; the candidate loop is the smallest one around the square root
    loops = []
    for addr, op in lines:
        m = re.search(r"BRA\s+(?:`\(\.L_x_\d+\)\s*)?.*?0x([0-9a-f]+)", op)
        if m and "BRA" in op:
            target = int(m.group(1), 16)
            if target < addr:
                loops.append((target, addr))
    body = None
    for lo, hi in sorted(loops, key=lambda r: r[1] - r[0]):
        ops = [op for a, op in lines if lo <= a <= hi]
        if any("MUFU.RSQ" in op or "MUFU.SQRT" in op or "DSQRT" in op or "MUFU.RCP64H" in op for op in ops):
            body = ops
            break
    if body is not None:
        out["loop_instructions"] = len(body)
        out["loop_bar_sync"] = sum("BAR." in op for op in body)
        out["warp_instructions_per_pair"] = round(len(body) / 32, 2)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="sm_90", help="target, e.g. sm_90 (H100/H200)")
    ap.add_argument("--variants", default=",".join([*VARIANTS, NOISE_VARIANT]), help="comma-separated subset")
    ap.add_argument("--block", type=int, default=64, help="queries per program (one per lane)")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("triton_sass: unset TRITON_INTERPRET (the interpreter compiles nothing)", file=sys.stderr)
        return 2
    import triton

    arch = int(args.arch.removeprefix("sm_"))
    rows = {}
    for name in args.variants.split(","):
        kernel = compile_noise(arch) if name == NOISE_VARIANT else compile_variant(VARIANTS[name], arch, args.block)
        rows[name] = analyse(kernel, arch)
        print(f"{name:24s} " + " ".join(f"{k}={v}" for k, v in rows[name].items()), flush=True)
    doc = {"triton": triton.__version__, "arch": args.arch, "block": args.block, "variants": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
