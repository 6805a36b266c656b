#!/usr/bin/env python3
"""The PyTorch peer of `npm run bench -- --peers` (bench/peers.ts starts it, once per bench run): the
bench's own shapes measured in eager PyTorch on the same weights, so that the two are timed side by
side in one run, alternating. Not a trainer: each request times one thing and says how long it took
(wall and CPU seconds of this process, every thread).

  python3 bench/peers/torch_peer.py --threads N

prints one JSON line (the build: torch's version and where it was imported from, the BLAS and
OpenMP libraries it loaded, its threads), then answers one JSON request per stdin line with one JSON
line on stdout ({"error": ...} when a request fails); progress goes to stderr. Requests ("op"):
  gpt.load {dir}                           the organism's checkpoint (gpt_twin.py): policy and reference
  gpt.logprobs {inputs, targets, temperature}             -> {logp, entropy} [B][T]
  gpt.generate {prompts, maxNewTokens, temperature, topP, eosId, seed} -> {completions, finished}
  gpt.grpo.lossGrad {inputs, targets, mask, adv, loss, temperature}
                                           -> the GRPO loss of the checkpoint's policy against itself
                                              as reference and old policy, and its gradient's norm
  gpt.rollouts {prompts, maxNewTokens, temperature, topP, eosId, reps, seed}
                                           -> {tokens, seconds, cpuSeconds}: tokens counted as the bench does
  gpt.grpo.start {promptIds, answer, vocab, grpo, seed, eosId, padId}
  gpt.grpo.step {}                         -> one GRPO step: rollouts, rewards, advantages, update
  llama.load {dir}                         a Llama-family checkpoint (llama_twin.py)
  llama.logprobs {inputs, targets, temperature}
  llama.sample {prompts, newTokens, seed}  -> {tokens, seconds, cpuSeconds}
  llama.update {ids, adv, microBatch, microBatches, recompute}
                                           -> forward + backward of hfModel.ts's update loss, timed
                                              over the first `microBatches` micro-batches, then one
                                              forward without gradient over the same ones
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the working tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from gpt_twin import Gpt  # noqa: E402
from llama_twin import Llama  # noqa: E402
from tensors import SDPA, read_checkpoint_tensors  # noqa: E402


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Timer:
    def __enter__(self):
        self.t0, self.c0 = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.cpu = cpu_seconds() - self.c0


def build_info(threads):
    """what this torch is and what it runs on: the BLAS, LAPACK, oneDNN and OpenMP libraries mapped
    into the process after a matmul (Debian's torch takes libblas.so.3 from the alternatives system:
    OpenBLAS with libopenblas0-openmp or -pthread, else the reference BLAS)"""
    a = torch.randn(64, 64)
    (a @ a).sum().item()
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            base = os.path.basename(path)
            if re.search(r"blas|lapack|mkl|dnnl|omp|iomp", base) and not base.endswith(".py"):
                libs.add(os.path.realpath(path))
    libs = sorted(libs)
    config = torch.__config__.show()
    capability = re.search(r"CPU capability usage: (\S+)", config)
    blas_info = re.search(r"BLAS_INFO=([^,]+)", config)
    return {
        "python": sys.executable,
        "pythonVersion": sys.version.split()[0],
        "torch": torch.__version__,
        "torchPath": os.path.dirname(torch.__file__),
        "blasInfo": blas_info.group(1) if blas_info else None,
        "libraries": libs,
        "debianPackages": debian_packages([torch.__file__] + libs),
        "mkl": torch.backends.mkl.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cpuCapability": capability.group(1) if capability else None,
        "threads": torch.get_num_threads(),
        "interopThreads": torch.get_num_interop_threads(),
        "attention": "scaled_dot_product_attention" if SDPA else "matmul + softmax",
        "requestedThreads": threads,
        "ompWaitPolicy": os.environ.get("OMP_WAIT_POLICY") or None,
    }


def debian_packages(paths):
    """"package version" of each Debian package owning one of `paths` (none outside Debian's files)"""
    try:
        owners = subprocess.run(["dpkg-query", "-S", *paths], capture_output=True, text=True, timeout=20).stdout
        names = sorted({line.split(":")[0] for line in owners.splitlines() if ": " in line})
        if not names:
            return []
        versions = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *names], capture_output=True, text=True, timeout=20
        ).stdout
        return [v for v in versions.splitlines() if v]
    except (OSError, subprocess.SubprocessError):
        return []


# ---------------------------------------------------------------------------------------------
# GRPO (src/rl): the loss of rl/loss.ts, advantages of rl/advantages.ts, the step of rl/trainer.ts


def reward(text, label):
    """1 when the text after the last #### (first line, trailing . ; , and spaces dropped) is the
    label's number: the organism's answer form; a simplification of reward/verifier.ts, which also
    reads \\boxed{} and compares expressions (the step's arithmetic does not depend on it)"""
    at = text.rfind("####")
    if at < 0:
        return 0
    tail = re.split(r"[\r\n]", text[at + 4 :])[0]
    tail = re.split(r"<(?:eos|pad|bos|unk)>", tail)[0]
    answer = re.sub(r"[\s.;,]+$", "", tail).strip()
    try:
        a, b = float(answer), float(label)
    except ValueError:
        return 0
    return 1 if abs(a - b) <= 1e-6 * max(1.0, abs(b)) else 0


def group_advantages(rewards, G, std, eps):
    """[n] rewards, group-major, groups of G -> [n]: (r - mean) / (std + eps), std sample/population/none"""
    r = torch.tensor(rewards, dtype=torch.float64).view(-1, G)
    d = r - r.mean(1, keepdim=True)
    if std == "none":
        return d.flatten().tolist()
    denom = G if std == "population" else max(1, G - 1)
    s = ((d**2).sum(1, keepdim=True) / denom).sqrt()
    return (d / (s + eps)).flatten().tolist()


def aggregate(v, mask, cfg):
    m = v * mask
    if cfg["aggregation"] == "token-mean":
        return m.sum() / mask.sum().clamp_min(1e-8)
    if cfg["aggregation"] == "seq-mean-token-mean":
        return (m.sum(1) / mask.sum(1).clamp_min(1e-8)).mean()
    if cfg["aggregation"] == "constant":
        return m.sum() / (v.shape[0] * cfg["constantLength"])
    raise ValueError(f"unknown aggregation {cfg['aggregation']!r}")


def grpo_loss(logp, old, ref, entropy, adv, mask, cfg):
    """[B, T] tensors, adv [B]: pgCoef · clipped surrogate + klCoef · k3 KL (clamped as verl's
    low_var_kl when klClamp is set) − entropyCoef · entropy, aggregated over the mask"""
    ratio = (logp - old).exp()
    a = adv[:, None]
    eps = cfg["clipEps"]
    pg = -torch.minimum(ratio * a, ratio.clamp(1 - eps, 1 + eps) * a)
    d = ref - logp
    if cfg["klClamp"] is None:
        kl = d.exp() - d - 1
    else:
        d = d.clamp(-20, 20)
        kl = (d.exp() - d - 1).clamp(-cfg["klClamp"], cfg["klClamp"])
    return (
        cfg["pgCoef"] * aggregate(pg, mask, cfg)
        + cfg["klCoef"] * aggregate(kl, mask, cfg)
        - cfg["entropyCoef"] * aggregate(entropy, mask, cfg)
    )


def response_batch(prefix, completions, stops, pad_id):
    """inputs, targets [B, T] padded with pad_id, and the mask over response tokens (rl/trainer.ts)"""
    seqs = [prefix + c + ([s] if s is not None else []) for c, s in zip(completions, stops)]
    T = max(len(s) for s in seqs) - 1
    inputs = torch.full((len(seqs), T), pad_id, dtype=torch.int64)
    targets = torch.full((len(seqs), T), pad_id, dtype=torch.int64)
    mask = torch.zeros(len(seqs), T)
    for i, s in enumerate(seqs):
        n = len(s) - 1
        inputs[i, :n] = torch.tensor(s[:-1])
        targets[i, :n] = torch.tensor(s[1:])
        mask[i, len(prefix) - 1 : n] = 1
    return inputs, targets, mask


class GrpoRun:
    """GrpoTrainer.step on one example with the resolved GrpoSchema values: `copies` × `rollouts`
    samples, rewards, group advantages, and one AdamW step (torch.optim.AdamW, decay on all but .b
    and .g, clip_grad_norm_) on the loss against the frozen reference"""

    def __init__(self, policy, reference, req):
        g = req["grpo"]
        if g["updatesPerBatch"] != 1 or g["microBatch"] not in (0, g["copies"] * g["rollouts"]):
            raise ValueError("the peer's GRPO step covers updatesPerBatch 1 and no micro-batches")
        self.g, self.policy, self.reference = g, policy, reference
        self.prompt, self.answer, self.vocab = req["promptIds"], req["answer"], req["vocab"]
        self.eos, self.pad = req["eosId"], req["padId"]
        self.generator = torch.Generator().manual_seed(req["seed"])
        lt = g["loss"]["logprobTemperature"]
        self.lp_temperature = g["temperature"] if lt == "rollout" else lt
        decay = [p for n, p in policy.params.items() if Gpt.decayed(n)]
        rest = [p for n, p in policy.params.items() if not Gpt.decayed(n)]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": g["weightDecay"]}, {"params": rest, "weight_decay": 0.0}],
            lr=g["learningRate"],
            betas=(g["beta1"], g["beta2"]),
            eps=1e-8,
        )

    def step(self):
        g = self.g
        n = g["copies"] * g["rollouts"]
        t0, c0 = time.perf_counter(), cpu_seconds()
        # the organism's prompts start with BOS; its decoders stop at EOS only
        completions, finished = self.policy.generate(
            [self.prompt] * n, g["maxNewTokens"], g["temperature"], g["topP"], self.eos, self.generator
        )
        rewards = [reward("".join(self.vocab[t] for t in c), self.answer) for c in completions]
        adv = torch.tensor(group_advantages(rewards, g["rollouts"], g["advantage"]["std"], g["advantage"]["eps"]))
        t1, c1 = time.perf_counter(), cpu_seconds()
        inputs, targets, mask = response_batch(
            self.prompt, completions, [self.eos if f else None for f in finished], self.pad
        )
        with torch.no_grad():
            ref, _ = self.reference.token_logprobs(inputs, targets, self.lp_temperature)
        logp, entropy = self.policy.token_logprobs(inputs, targets, self.lp_temperature, entropy=True)
        loss = grpo_loss(logp, logp.detach(), ref, entropy, adv.float(), mask, g["loss"])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        params = list(self.policy.params.values())
        if g["gradClip"] > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, g["gradClip"])
        else:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        self.opt.step()
        t2, c2 = time.perf_counter(), cpu_seconds()
        return {
            "seconds": t2 - t0,
            "cpuSeconds": c2 - c0,
            "rolloutSeconds": t1 - t0,
            "rolloutCpuSeconds": c1 - c0,
            "updateSeconds": t2 - t1,
            "updateCpuSeconds": c2 - c1,
            "batch": list(inputs.shape),
            "responseLength": sum(len(c) for c in completions) / n,
            "loss": loss.item(),
            "gradNorm": float(norm),
            "trainAccuracy": sum(rewards) / n,
        }


# ---------------------------------------------------------------------------------------------


class Peer:
    def __init__(self):
        self.gpt = self.gpt_ref = self.grpo = self.llama = None

    def op_gpt_load(self, req):
        with open(os.path.join(req["dir"], "config.json")) as f:
            cfg = json.load(f)
        if cfg.get("format") != "oneshot-rlvr/gpt@1":
            raise ValueError(f"{req['dir']}: not an oneshot-rlvr/gpt@1 checkpoint")
        tensors = read_checkpoint_tensors(req["dir"])
        self.gpt = Gpt(cfg["model"], tensors)
        self.gpt_ref = Gpt(cfg["model"], tensors, trainable=False)
        return {"parameters": sum(p.numel() for p in self.gpt.params.values())}

    def op_gpt_logprobs(self, req):
        return self.logprobs(self.gpt, req)

    def op_gpt_generate(self, req):
        generator = torch.Generator().manual_seed(req["seed"])
        completions, finished = self.gpt.generate(
            req["prompts"], req["maxNewTokens"], req["temperature"], req["topP"], req["eosId"], generator
        )
        return {"completions": completions, "finished": finished}

    def op_gpt_grpo_lossGrad(self, req):
        inputs, targets = torch.tensor(req["inputs"]), torch.tensor(req["targets"])
        t = req.get("temperature", 1.0)
        with torch.no_grad():
            ref, _ = self.gpt_ref.token_logprobs(inputs, targets, t)
        logp, ent = self.gpt.token_logprobs(inputs, targets, t, entropy=True)
        loss = grpo_loss(logp, logp.detach(), ref, ent, torch.tensor(req["adv"]), torch.tensor(req["mask"]), req["loss"])
        params = list(self.gpt.params.values())
        grads = torch.autograd.grad(loss, params)
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
        return {"loss": loss.item(), "gradNorm": norm.item()}

    def op_gpt_rollouts(self, req):
        generator = torch.Generator().manual_seed(req["seed"])
        tokens = 0
        with Timer() as t:
            for _ in range(req["reps"]):
                completions, finished = self.gpt.generate(
                    req["prompts"], req["maxNewTokens"], req["temperature"], req["topP"], req["eosId"], generator
                )
                tokens += sum(len(c) + (1 if f else 0) for c, f in zip(completions, finished))
        return {"tokens": tokens, "seconds": t.seconds, "cpuSeconds": t.cpu}

    def op_gpt_grpo_start(self, req):
        # a policy of its own, from the checkpoint's weights; the reference stays frozen
        self.grpo = GrpoRun(Gpt(self.gpt.cfg, self.gpt_ref.params), self.gpt_ref, req)
        return {}

    def op_gpt_grpo_step(self, req):
        return self.grpo.step()

    def op_llama_load(self, req):
        with open(os.path.join(req["dir"], "config.json")) as f:
            config = json.load(f)
        self.llama = Llama(config, read_checkpoint_tensors(req["dir"]))
        return {"parameters": sum(p.numel() for p in self.llama.params.values())}

    def op_llama_logprobs(self, req):
        return self.logprobs(self.llama, req)

    def op_llama_sample(self, req):
        generator = torch.Generator().manual_seed(req["seed"])
        with Timer() as t:
            completions, _ = self.llama.generate(req["prompts"], req["newTokens"], 1.0, 1.0, [], generator)
        return {"tokens": sum(len(c) for c in completions), "seconds": t.seconds, "cpuSeconds": t.cpu}

    def op_llama_update(self, req):
        """hfModel.ts's update: Σ adv · log p + 0.001 · entropy over every token / (B · L), gradients
        summed over micro-batches; `microBatches` of them timed"""
        ids = torch.tensor(req["ids"])
        adv = torch.tensor(req["adv"])
        B, L = ids.shape[0], ids.shape[1] - 1
        mb, timed = req["microBatch"], req["microBatches"]
        self.llama.recompute = req["recompute"]
        for p in self.llama.params.values():
            p.grad = None
        with Timer() as upd:
            for m in range(timed):
                rows = ids[m * mb : (m + 1) * mb]
                logp, ent = self.llama.token_logprobs(rows[:, :-1], rows[:, 1:], 1.0, entropy=True)
                loss = ((logp * adv[m * mb : (m + 1) * mb, None]).sum() + ent.sum() * 0.001) / (B * L)
                loss.backward()
                print(f"  torch update micro-batch {m + 1}/{timed}: {time.perf_counter() - upd.t0:.1f} s", file=sys.stderr)
        for p in self.llama.params.values():
            p.grad = None
        with Timer() as fwd, torch.no_grad():
            for m in range(timed):
                rows = ids[m * mb : (m + 1) * mb]
                self.llama.token_logprobs(rows[:, :-1], rows[:, 1:], 1.0)
        return {
            "updateSeconds": upd.seconds,
            "updateCpuSeconds": upd.cpu,
            "forwardSeconds": fwd.seconds,
            "forwardCpuSeconds": fwd.cpu,
            "microBatchesTimed": timed,
        }

    @staticmethod
    def logprobs(model, req):
        with torch.no_grad():
            logp, ent = model.token_logprobs(
                torch.tensor(req["inputs"]), torch.tensor(req["targets"]), req.get("temperature", 1.0), entropy=True
            )
        return {"logp": logp.tolist(), "entropy": ent.tolist()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    out = sys.stdout
    out.write(json.dumps({"build": build_info(args.threads)}) + "\n")
    out.flush()
    peer = Peer()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            fn = getattr(peer, "op_" + req["op"].replace(".", "_"), None)
            if fn is None:
                raise ValueError(f"unknown op {req['op']!r}")
            res = fn(req)
        except Exception as e:  # the bench reports it and carries on
            res = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
        out.write(json.dumps(res) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
