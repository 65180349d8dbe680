"""The outside stack: transformers' eager `generate` on random weights, recorded as engine `hf-eager`.

The model comes from the transformers config class of the architecture's family, filled from the
ArchSpec (no download), built on the GPU in bf16. Prefill time is a generate of one new token;
decode time is a generate of o tokens (min_new_tokens = max_new_tokens = o) minus that.
"""
from __future__ import annotations

import time

from simulator.arch import ArchSpec
from simulator.errors import UserError


def hf_config_kwargs(arch: ArchSpec) -> tuple[str, dict]:
    """(transformers config class name, its keyword arguments) for the families generate can run."""
    common = dict(vocab_size=arch.vocab, hidden_size=arch.hidden, num_hidden_layers=arch.n_layers,
                  num_attention_heads=arch.n_heads, max_position_embeddings=arch.max_positions,
                  tie_word_embeddings=arch.tied_embeddings)
    if arch.is_moe:
        raise UserError(f"{arch.name}: hf-eager covers dense models only; pick a dense --arch")
    if arch.norm == "rmsnorm" and arch.ffn_kind == "swiglu" and arch.positions == "rotary":
        return "LlamaConfig", dict(common, intermediate_size=arch.ffn_hidden, num_key_value_heads=arch.n_kv_heads,
                                   head_dim=arch.head_dim)
    if arch.positions == "learned" and arch.ffn_kind == "gelu" and not arch.parallel_block:
        return "OPTConfig", dict(common, ffn_dim=arch.ffn_hidden, word_embed_proj_dim=arch.hidden,
                                 activation_function="gelu_new", do_layer_norm_before=True)
    if arch.parallel_block and arch.positions == "rotary" and arch.n_kv_heads == arch.n_heads:
        return "GPTNeoXConfig", dict(common, intermediate_size=arch.ffn_hidden, rotary_pct=1.0,
                                     use_parallel_residual=True)
    raise UserError(f"{arch.name}: no transformers config class mapped for this family; "
                    "hf-eager covers Llama-like, OPT-like and NeoX-like models")


def _no_init_weights():
    """transformers' context that skips all weight init (it moved between versions), else a no-op."""
    import contextlib
    import importlib

    for mod in ("transformers.initialization", "transformers.modeling_utils"):
        try:
            return importlib.import_module(mod).no_init_weights()
        except (ImportError, AttributeError):
            continue
    return contextlib.nullcontext()


class HFEngine:
    """A transformers model of the arch's shape with random bf16 weights; times generate."""

    def __init__(self, arch: ArchSpec, device: str = "cuda", seed: int = 0):
        import torch
        import transformers

        cls_name, kwargs = hf_config_kwargs(arch)
        cfg = getattr(transformers, cls_name)(**kwargs)
        self.arch, self.device = arch, torch.device(device)
        torch.manual_seed(seed)
        old = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        try:
            with self.device, _no_init_weights():  # its per-module init is slow; ours below is one pass
                self.model = transformers.AutoModelForCausalLM.from_config(cfg)
        finally:
            torch.set_default_dtype(old)
        with torch.no_grad():
            for name, w in self.model.named_parameters():  # matrices N(0, 0.02^2), gains 1, biases 0
                if w.dim() > 1:
                    w.normal_(0.0, 0.02)
                else:
                    w.fill_(0.0 if name.endswith("bias") else 1.0)
        self.model.eval()

    def prepare(self, b: int, s_needed: int) -> None:
        """Nothing to allocate ahead: generate makes its own dynamic cache."""

    def _generate_s(self, prompt, n_new: int) -> float:
        import torch

        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        start = time.perf_counter()
        with torch.no_grad():
            self.model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                max_new_tokens=n_new, min_new_tokens=n_new, pad_token_id=0)
        sync()
        return time.perf_counter() - start

    def time_query(self, p: int, o: int, b: int, repeats: int = 3, warmup: int = 1, seed: int = 0,
                   energy=None) -> dict:
        """Row fields (calibration/query_timing.py) of prefill (generate 1) and decode (generate o, minus
        prefill) over `repeats` runs after `warmup` untimed generates of o tokens; energy over generate o."""
        import torch

        from calibration.query_timing import RunTimes, measure_query, metered

        g = torch.Generator().manual_seed(seed)
        prompt = torch.randint(1, self.arch.vocab, (b, p), generator=g).to(self.device)
        for _ in range(warmup):  # the whole query: generate's first long run is slower
            self._generate_s(prompt, o)

        def run() -> RunTimes:
            if o == 1:  # the one-token generate is the whole query
                pre, joules = metered(energy, lambda: self._generate_s(prompt, 1))
                return RunTimes(pre, 0.0, joules)
            pre = self._generate_s(prompt, 1)
            full, joules = metered(energy, lambda: self._generate_s(prompt, o))
            return RunTimes(pre, max(full - pre, 0.0), joules)
        return measure_query(run, repeats, o)
