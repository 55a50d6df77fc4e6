"""P5: memory kept per recorded step, in latent-sized tensors (target: <= 3 plus scheduler state).

    python bench/p5_memory.py --model toy --steps 25

Counts the distinct tensor storages reachable from the records and the rewind snapshots (shared
storages counted once), split into latent-sized tensors and scheduler state.
"""

from __future__ import annotations


import torch
from common import finished_run, run_options


def tensors_in(obj, depth=0):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif depth < 3 and isinstance(obj, (list, tuple)):
        for item in obj:
            yield from tensors_in(item, depth + 1)
    elif depth < 3 and isinstance(obj, dict):
        for item in obj.values():
            yield from tensors_in(item, depth + 1)
    elif depth < 2 and hasattr(obj, "__dict__"):
        for item in vars(obj).values():
            yield from tensors_in(item, depth + 1)


def storage_bytes(tensors, seen) -> int:
    total = 0
    for tensor in tensors:
        key = tensor.untyped_storage().data_ptr()
        if key in seen or tensor.numel() == 0:
            continue
        seen.add(key)
        total += tensor.untyped_storage().nbytes()
    return total


def main() -> None:
    args = run_options(steps=25, scheduler="dpmpp_2m").parse_args()
    _, st = finished_run(args)
    latent_bytes = st.latents.numel() * st.latents.element_size()
    seen: set[int] = set()
    # storages every step shares (mask, inputs) are counted before the per-step ones
    storage_bytes(tensors_in(vars(st.run_inputs)), seen)
    storage_bytes([st.prompt_embeds], seen)
    record_bytes = storage_bytes((t for r in st.records for t in r.tensor_fields().values()), seen)
    snap_latents = storage_bytes((s.latents for s in st._snapshots), seen)
    scheduler_bytes = storage_bytes((t for s in st._snapshots for t in tensors_in(vars(s.scheduler))), seen)
    generator_bytes = storage_bytes((s.generator_state for s in st._snapshots), seen)
    n = len(st.records)
    per_step_latents = (record_bytes + snap_latents) / n / latent_bytes
    print(f"P5 model={args.model} scheduler={args.scheduler} steps={n} latent={latent_bytes} B: "
          f"{per_step_latents:.2f} latent-sized tensors per step (target 3) + scheduler state "
          f"{scheduler_bytes / n / 1024:.1f} KiB/step + generator state {generator_bytes / n / 1024:.1f} KiB/step")


if __name__ == "__main__":
    main()
