"""The training run: builds everything a TrainSpec names, runs the two-optimizer GAN loop, and
reports through events. One Trainer per process; under torchrun every rank runs one."""
from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Dict, List, Mapping, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from .. import amp, distributed
from ..checkpoint import file_sha256
from ..data import MicroBatchSampler, eval_loader, train_loader
from ..discriminators import build_discriminator
from ..ema import EMA
from ..evaluate import EvalResult, evaluate
from ..events import Events, warn
from ..images import holdout_count, scan_images, split_holdout
from ..model import FQGAN
from ..objective import DiscriminatorPair, GeneratorStep, Objective
from ..sample_grid import write_sample_grid
from ..stopping import StopFlag
from .checkpoint_store import CheckpointStore
from .spec import Problem, SpecError, TrainSpec, batch_for
from .starting_point import check_teacher_widths, load_discriminator, load_lpips, load_starting_point, load_teachers
from .validate import outside_problem

EXIT_CANCELLED = 143  # 128 + SIGTERM: a cancelled run, with its `cancelled` event and checkpoint


class Trainer:
    def __init__(self, spec: TrainSpec, events: Events, dist: distributed.DistInfo, device: torch.device,
                 precision: str, stop: StopFlag) -> None:
        self.spec, self.hp, self.events, self.dist = spec, spec.hyperparameters, events, dist
        self.device, self.precision, self.stop = device, precision, stop
        self.store = CheckpointStore(os.path.join(spec.output_dir, "checkpoints"), self.hp.keep_checkpoints)

    # ------------------------------------------------------------------------------- setup

    def setup(self) -> None:
        """Everything before the first step; a problem the spec can fix raises SpecError."""
        hp, spec = self.hp, self.spec
        world = self.dist.world_size
        self._find_images()
        # null: the default batch, or the whole training set when it is smaller (a small dataset still trains).
        self.batch_size = batch_for(hp.batch_size, len(self.train_paths), world * hp.grad_accum)
        if self.batch_size % (world * hp.grad_accum):
            raise SpecError([Problem("hyperparameters.batch_size", f"{self.batch_size} is not divisible by "
                                                                   f"world_size {world} x grad_accum {hp.grad_accum}")])
        if len(self.train_paths) < self.batch_size:
            raise SpecError([Problem("dataset", f"{len(self.train_paths)} training images are fewer than "
                                                f"batch_size {self.batch_size}")])
        self.micro_batch = self.batch_size // (world * hp.grad_accum)

        self.teachers = load_teachers(spec, self.device)  # first: fresh semantic heads take their widths
        torch.manual_seed(hp.seed)  # the same initial weights on every rank
        start = load_starting_point(spec, self.teachers)
        self.model = start.model.to(self.device).train()
        check_teacher_widths(self.model.config, self.teachers)
        self.source = start.source
        self.image_size = self.model.config.image_size
        if hp.image_size is not None and hp.image_size != self.image_size:
            raise SpecError([Problem("hyperparameters.image_size",
                                     f"{hp.image_size} differs from the model's image_size {self.image_size}")])

        self.discriminator = build_discriminator(hp.disc_type, self.image_size, hp.disc_dim, hp.disc_layers)
        if start.discriminator_state is not None:
            load_discriminator(self.discriminator, start.discriminator_state, hp.disc_type,
                               from_resume=start.resume_state is not None)
        self.discriminator.to(self.device).train()

        self.objective = Objective(hp, load_lpips(spec, self.device), self.teachers)
        betas = (hp.beta1, hp.beta2)
        self.opt_g = torch.optim.Adam(self.model.parameters(), lr=hp.lr, betas=betas, weight_decay=hp.weight_decay)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr, betas=betas,
                                      weight_decay=hp.weight_decay)
        self.scaler_g = amp.grad_scaler(self.device, self.precision)
        self.scaler_d = amp.grad_scaler(self.device, self.precision)
        self.ema = EMA(self.model, hp.ema_decay) if hp.ema else None
        self.step = 0
        self.window = LossWindow()
        if start.resume_state is not None:
            self._restore(start.resume_state)

        self.g_step: nn.Module = GeneratorStep(self.model, self.objective, self.discriminator)
        self.d_pair: nn.Module = DiscriminatorPair(self.discriminator)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # Unused parameters: the semantic heads when semantic_weight is 0.
            self.g_step = DDP(self.g_step, device_ids=ids, find_unused_parameters=True)
            self.d_pair = DDP(self.d_pair, device_ids=ids)

        sampler = MicroBatchSampler(len(self.train_paths), self.micro_batch, hp.seed, self.dist.rank,
                                    world, start=self.step * hp.grad_accum)
        self.batches = iter(train_loader(self.train_paths, self.image_size, sampler, spec.device.num_workers,
                                         pin_memory=self.device.type == "cuda"))

    def close(self) -> None:
        """Stops the DataLoader workers now: left to interpreter exit, multiprocessing would wait for them."""
        self.batches = iter(())  # the last reference: the loader iterator shuts its workers down

    def _find_images(self) -> None:
        spec, hp = self.spec, self.hp
        found = scan_images(spec.dataset, within=spec.datasets_root)
        for path in found.unreadable:
            warn(f"skipping unreadable image {path}")
        self.unreadable = list(found.unreadable)
        # --check refused these already; a link made since is refused the same way (never read: not listed)
        eval_found = scan_images(spec.eval_dataset, within=spec.datasets_root) if spec.eval_dataset else None
        for name, listing in (("dataset", found), ("eval_dataset", eval_found)):
            if listing is not None and listing.outside:
                raise SpecError([outside_problem(name, listing.outside)])
        if eval_found is not None:
            self.train_paths = found.paths
            eval_paths = eval_found.paths
            self.eval_paths = eval_paths[: hp.eval_images] if hp.eval_images else eval_paths
        else:
            held = holdout_count(len(found.paths), hp.eval_images)
            self.train_paths, self.eval_paths = split_holdout(found.paths, held, hp.seed)

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.opt_g.load_state_dict(state["optimizer"])
        self.opt_d.load_state_dict(state["optimizer_disc"])
        if self.ema is not None:
            if "ema" in state:
                self.ema.load_state_dict(state["ema"])
            else:
                warn("the resumed checkpoint has no EMA; it restarts from the current weights")
        extra = state.get("trainer") or {}
        for scaler, key in ((self.scaler_g, "scaler"), (self.scaler_d, "scaler_disc")):
            if extra.get(key):
                scaler.load_state_dict(extra[key])
        self.step = int(state["steps"])

    # ------------------------------------------------------------------------------- the loop

    def run(self) -> int:
        hp = self.hp
        self.events.emit("started", steps=hp.steps, start_step=self.step, device=str(self.device),
                         precision=self.precision, world_size=self.dist.world_size,
                         dataset=len(self.train_paths), eval_images=len(self.eval_paths),
                         skipped=len(self.unreadable), skipped_files=self.unreadable[:20],
                         batch_size=self.batch_size, micro_batch=self.micro_batch,
                         model={"variant": self.model.config.variant, "image_size": self.image_size,
                                "codebooks": list(self.model.codebook_names),
                                "codebook_size": self.model.config.codebook_size,
                                "parameters": sum(p.numel() for p in self.model.parameters())})
        last_saved = None  # a resumed run's source checkpoint may live elsewhere: always save once here
        while self.step < hp.steps:
            if distributed.any_across(self.dist, self.stop.requested, self.device):
                path = self._save()
                self.events.emit("cancelled", step=self.step, checkpoint=path)
                return EXIT_CANCELLED
            started = time.monotonic()
            self.train_step()
            self.window.seconds += time.monotonic() - started  # training time only: no eval, no saving
            if self.step % hp.log_every == 0 or self.step == hp.steps:
                self._report(self.window)
                self.window = LossWindow()
            if hp.checkpoint_every and self.step % hp.checkpoint_every == 0:
                self._save()
                last_saved = self.step
            if hp.eval_every and self.step % hp.eval_every == 0 and self.step < hp.steps:
                self._evaluate()
        final = self.store.path(self.step) if last_saved == self.step else self._save()
        self._evaluate()
        if self.dist.is_main:
            self._export(final)
        distributed.barrier(self.dist)
        self.events.emit("finished", step=self.step)
        return 0

    def train_step(self) -> None:
        """One optimizer step of G, then of D once it has started, over grad_accum micro-batches."""
        step = self.step + 1  # 1-based, as the reference's global_step
        # Per-(rank, step) seed: dropout and anything else random stays repeatable across resumes.
        torch.manual_seed((self.hp.seed * 1_000_003 + self.dist.rank) * 1_000_003 + step)
        micro = [next(self.batches) for _ in range(self.hp.grad_accum)]
        for batch in micro:
            self.window.skipped += batch.skipped
        inputs = [batch.images.to(self.device, non_blocking=True) for batch in micro]
        recons = self._generator_pass(inputs, step)
        if self.objective.adversarial_factor(step) > 0:  # before disc_start D's loss is exactly 0: skip it
            self._discriminator_pass(inputs, recons, step)
        self.step = step
        self.window.steps += 1

    def _generator_pass(self, inputs: List[torch.Tensor], step: int) -> List[torch.Tensor]:
        window, recons = self.window, []
        self.opt_g.zero_grad(set_to_none=True)
        self.discriminator.requires_grad_(False)  # G's loss flows through D to the image, not into D
        for i, x in enumerate(inputs):
            with self._sync_unless(self.g_step, i < len(inputs) - 1):
                with amp.autocast(self.device, self.precision):
                    total, loss, out = self.g_step(x, step)
                self.scaler_g.scale(total / len(inputs)).backward()
            window.add(loss.terms, total.detach())
            window.usage = {k: v for k, v in out.encoded.usage.items() if v is not None}
            if loss.adaptive_weight is not None:
                window.add({"adaptive_weight": loss.adaptive_weight})
            recons.append(out.reconstruction.detach())
        self.discriminator.requires_grad_(True)
        self._optimizer_step(self.opt_g, self.scaler_g, self.model)
        if self.ema is not None:
            self.ema.update(self.model)
        return recons

    def _discriminator_pass(self, inputs: List[torch.Tensor], recons: List[torch.Tensor], step: int) -> None:
        self.opt_d.zero_grad(set_to_none=True)
        for i, (x, recon) in enumerate(zip(inputs, recons)):
            with self._sync_unless(self.d_pair, i < len(inputs) - 1):
                with amp.autocast(self.device, self.precision):
                    d = self.objective.discriminator(x, recon, step, self.d_pair)
                self.scaler_d.scale(d.total / len(inputs)).backward()
            self.window.add({"disc": d.total.detach(), "logits_real": d.logits_real, "logits_fake": d.logits_fake})
        self._optimizer_step(self.opt_d, self.scaler_d, self.discriminator)

    def _sync_unless(self, module: nn.Module, accumulating: bool):
        # Gradient accumulation: all-reduce only on the last micro-batch.
        return module.no_sync() if (accumulating and isinstance(module, DDP)) else contextlib.nullcontext()

    def _optimizer_step(self, optimizer: torch.optim.Optimizer, scaler: Any, module: nn.Module) -> None:
        if self.hp.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.hp.grad_clip)
        scaler.step(optimizer)
        scaler.update()

    # ------------------------------------------------------------------------------- reporting

    def _report(self, window: "LossWindow") -> None:
        names = sorted(window.sums)
        if names:
            means = torch.stack([window.sums[n] / window.counts[n] for n in names]).float()
            means = distributed.mean_across(self.dist, means).tolist()
        else:
            means = []
        skipped = int(distributed.sum_across(self.dist, torch.tensor([len(window.skipped)], device=self.device)).item())
        for path in window.skipped:
            warn(f"skipped unreadable image {path}")
        self.unreadable += window.skipped
        rate = window.steps / window.seconds if window.seconds > 0 else 0.0
        losses = dict(zip(names, means))
        gan = {k: losses.pop(k) for k in ("adaptive_weight", "logits_real", "logits_fake") if k in losses}
        self.events.emit("progress", step=self.step, total=self.hp.steps, losses=losses, usage=window.usage,
                         images_per_s=rate * self.batch_size,
                         eta_s=(self.hp.steps - self.step) / rate if rate > 0 else None,
                         skipped=skipped, **({"gan": gan} if gan else {}))

    def _eval_model(self) -> FQGAN:
        return self.ema.model if self.ema is not None else self.model

    def _evaluate(self) -> Optional[EvalResult]:
        result = None
        if self.dist.is_main and self.eval_paths:
            loader = eval_loader(self.eval_paths, self.image_size, max(1, min(self.micro_batch, 8)))
            result = evaluate(self._eval_model(), loader, self.device, amp.autocast(self.device, self.precision))
            write_sample_grid(self._eval_model(), self.eval_paths, self.image_size, self.spec.output_dir, self.step,
                              self.device, amp.autocast(self.device, self.precision))
            self.events.emit("eval", step=self.step, psnr=result.psnr, ssim=result.ssim, usage=result.usage,
                             images=result.images, weights="ema" if self.ema is not None else "model")
        distributed.barrier(self.dist)
        return result

    def _save(self) -> Optional[str]:
        path = None
        if self.dist.is_main:
            state = {
                "model": self.model.state_dict(),
                "optimizer": self.opt_g.state_dict(),
                "discriminator": self.discriminator.state_dict(),
                "optimizer_disc": self.opt_d.state_dict(),
                "steps": self.step,
                "args": self.spec.to_dict(),
                "config": self.model.config.to_dict(),
                "trainer": {"format": 1, "scaler": self.scaler_g.state_dict(),
                            "scaler_disc": self.scaler_d.state_dict(), "source": self.source,
                            "world_size": self.dist.world_size},
            }
            if self.ema is not None:
                state["ema"] = self.ema.state_dict()
            path = self.store.save(state, self.step)
            self.events.emit("checkpoint", step=self.step, path=path)
        distributed.barrier(self.dist)
        return path

    def _export(self, checkpoint: Optional[str]) -> None:
        from ..export import export_model, preset_name_of

        model = self._eval_model()
        out = os.path.join(self.spec.output_dir, "model")
        weights = "ema" if self.ema is not None else "model"
        source = {**self.source, "kind": "finetune", "path": checkpoint, "weights": weights,
                  "sha256": file_sha256(checkpoint) if checkpoint else None, "steps": self.step}
        # export_model works on a CPU float32 copy: the model stays on its device, in its mode.
        export_model(model, out, source, preset_name_of(model.config), checkpoint, embed_checkpoint=False)
        self.events.emit("exported", path=os.path.abspath(out))


class LossWindow:
    """Loss sums since the last progress event (device tensors: no host sync per step)."""

    def __init__(self) -> None:
        self.sums: Dict[str, torch.Tensor] = {}
        self.counts: Dict[str, int] = {}
        self.usage: Dict[str, float] = {}
        self.skipped: List[str] = []
        self.steps = 0
        self.seconds = 0.0

    def add(self, terms: Mapping[str, torch.Tensor], total: Optional[torch.Tensor] = None) -> None:
        if total is not None:
            terms = {**terms, "total": total}
        for name, value in terms.items():
            value = value.detach().float()
            self.sums[name] = self.sums[name] + value if name in self.sums else value
            self.counts[name] = self.counts.get(name, 0) + 1

