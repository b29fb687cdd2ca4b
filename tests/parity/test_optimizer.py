#!/usr/bin/env python3
"""fnet::AdamW, fnet::clip_grad_norm and fnet::LinearScheduleWithWarmup against torch.optim.AdamW,
torch.nn.utils.clip_grad_norm_ and get_linear_schedule_with_warmup's LambdaLR, run as Hugging Face's Trainer
runs them (clip, optimizer.step(), scheduler.step(); no weight decay on biases and LayerNorm weights), on the
same float32 tensors and the same gradient for every update.

    test_optimizer.py --optimizer-steps PATH [unittest args]

What must agree, and why:
- Where torch's CPU kernels fuse the moment updates into multiply-adds (every x86 with AVX2 or AVX-512, which
  a probe below detects), the C++ update is the same sequence of float32 operations: without clipping, the
  final values and both moments must be identical bit for bit.
- With clipping, torch sums the squares in float32 and fnet in double, so the two norms (and with them the
  clipping coefficients) can differ in their last bits. fnet's norm must be the exact norm rounded to float32
  (2^-23 relative), torch's within 2^-16 of it (float32 sums over ~10^5 squares). The values must agree to
  N (ulp(|p|) + 2^-12 lr_peak) after N updates: each update rounds p once (one ulp between the two runs at
  most), and a coefficient that differs in its last bits moves m / sqrt(v), hence the step, by a few float
  epsilons relative to lr; 2^-12 lr leaves room for that and for the float32 rounding of the moments, and is
  still far below any mistake in the formula (a learning rate off by one update is off by lr / W, weight
  decay on a bias by lr wd |p|, eps in the wrong place by a large fraction of the step on the tensor whose
  gradients are below eps). The moments must agree as in the C++ test against long double.
- Without fused kernels in torch, the same bound applies to every case.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fnet_reference as ref  # noqa: E402

OPTIMIZER_STEPS = None

# Names decide the weight decay (Hugging Face's rule: none for biases and LayerNorm weights). Sizes are odd,
# one tensor spans several of the C++ side's chunks, one has gradients far below eps.
TENSORS = [
    ("encoder.layer.0.intermediate.dense.weight", (37, 29)),
    ("encoder.layer.0.intermediate.dense.bias", (37,)),
    ("embeddings.LayerNorm.weight", (29,)),
    ("embeddings.word_embeddings.weight", (71, 997)),
    ("classifier.weight", (3, 29)),
    ("classifier.bias", (3,)),
    ("tiny.weight", (1001,)),
]


def make_problem(seed, steps):
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(shape).astype(np.float32) for _, shape in TENSORS]
    gradients = []
    for (name, shape) in TENSORS:
        rows = []
        for _ in range(steps):
            scale = 1e-9 if name == "tiny.weight" else 10.0 ** rng.uniform(-4, 1)
            g = (scale * rng.standard_normal(shape)).astype(np.float32)
            g[rng.random(shape) < 0.01] = 0
            rows.append(g)
        gradients.append(np.stack(rows))
    return values, gradients


def run_torch(values, gradients, steps, peak_lr, warmup, weight_decay, max_norm, betas=(0.9, 0.999), eps=1e-8):
    params = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values]
    groups = [
        {"params": [p for (name, _), p in zip(TENSORS, params) if ref.decays_weight(name)],
         "weight_decay": weight_decay},
        {"params": [p for (name, _), p in zip(TENSORS, params) if not ref.decays_weight(name)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=peak_lr, betas=betas, eps=eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, ref.linear_schedule_with_warmup(warmup, steps))
    norms = []
    for k in range(steps):
        for p, g in zip(params, gradients):
            p.grad = torch.from_numpy(g[k].copy())
        if max_norm is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(params, max_norm)))
        else:
            norms.append(float(torch.norm(torch.stack([torch.norm(p.grad) for p in params]))))
        optimizer.step()
        scheduler.step()
    state = [optimizer.state[p] for p in params]
    return ([p.detach().numpy().copy() for p in params], [s["exp_avg"].numpy().copy() for s in state],
            [s["exp_avg_sq"].numpy().copy() for s in state], np.array(norms, dtype=np.float32))


def torch_fuses_multiply_add():
    """True when torch's add_(alpha=) here rounds once (a fused multiply-add), as the C++ side does."""
    rng = np.random.default_rng(3)
    m = (rng.standard_normal(4096) * 10.0 ** rng.uniform(-3, 3, 4096)).astype(np.float32)
    g = (rng.standard_normal(4096) * 10.0 ** rng.uniform(-3, 3, 4096)).astype(np.float32)
    alpha = np.float32(1 - 0.9)
    decayed = m * np.float32(0.9)
    torch_result = torch.from_numpy(m.copy()).mul_(0.9).add_(torch.from_numpy(g), alpha=1 - 0.9).numpy()
    fused = (alpha.astype(np.float64) * g.astype(np.float64) + decayed.astype(np.float64)).astype(np.float32)
    separate = decayed + alpha * g
    return np.array_equal(torch_result, fused) and not np.array_equal(torch_result, separate)


def ulp(x):
    return np.spacing(np.abs(x).astype(np.float32)).astype(np.float64)


class OptimizerParityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="fnet-optimizer-")
        cls.fused = torch_fuses_multiply_add()
        print(f"torch fuses the moment updates here: {cls.fused}", file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work)

    def run_fnet(self, name, values, gradients, steps, peak_lr, warmup, weight_decay, max_norm, threads=1):
        directory = os.path.join(self.work, name)
        os.makedirs(directory)
        with open(os.path.join(directory, "names.txt"), "w") as f:
            f.write("".join(n + "\n" for n, _ in TENSORS))
        for i, (v, g) in enumerate(zip(values, gradients)):
            np.save(os.path.join(directory, f"value_{i}.npy"), v)
            np.save(os.path.join(directory, f"gradient_{i}.npy"), g)
        command = [OPTIMIZER_STEPS, "--dir", directory, "--steps", str(steps), "--peak-lr", repr(peak_lr),
                   "--warmup", str(warmup), "--weight-decay", repr(weight_decay), "--threads", str(threads)]
        if max_norm is not None:
            command += ["--max-norm", repr(max_norm)]
        result = subprocess.run(command, capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        load = lambda stem, i: np.load(os.path.join(directory, f"{stem}_{i}.npy"))  # noqa: E731
        count = len(TENSORS)
        return ([load("out_value", i) for i in range(count)], [load("out_exp_avg", i) for i in range(count)],
                [load("out_exp_avg_sq", i) for i in range(count)], np.load(os.path.join(directory, "out_norms.npy")))

    def compare(self, case, steps, peak_lr, warmup, weight_decay, max_norm, seed):
        values, gradients = make_problem(seed, steps)
        ours = self.run_fnet(case, values, gradients, steps, peak_lr, warmup, weight_decay, max_norm)
        theirs = run_torch(values, gradients, steps, peak_lr, warmup, weight_decay, max_norm)
        # fnet's norm (squares summed in double) is the exact norm rounded to float32; torch's sums in float32.
        exact = np.sqrt(sum(np.sum(g.astype(np.float64).reshape(steps, -1) ** 2, axis=1) for g in gradients))
        np.testing.assert_allclose(ours[3], exact, rtol=2.0 ** -23, atol=0, err_msg=f"{case}: fnet's gradient norms")
        np.testing.assert_allclose(theirs[3], exact, rtol=2.0 ** -16, atol=0, err_msg=f"{case}: torch's gradient norms")
        clipped = 0 if max_norm is None else int(np.sum(theirs[3] > max_norm))
        same_norms = int(np.sum(ours[3].view(np.int32) == theirs[3].view(np.int32)))
        print(f"{case}: {same_norms} of {steps} gradient norms bit-identical, largest relative difference "
              f"{np.max(np.abs(ours[3].astype(np.float64) / theirs[3] - 1)):.3g}", file=sys.stderr)
        exact = self.fused and max_norm is None
        eps32 = float(np.finfo(np.float32).eps)
        for i, (name, _) in enumerate(TENSORS):
            p, m, v = ours[0][i], ours[1][i], ours[2][i]
            tp, tm, tv = theirs[0][i], theirs[1][i], theirs[2][i]
            allowed = steps * (ulp(tp) + 2.0 ** -12 * peak_lr)
            error = np.abs(p.astype(np.float64) - tp)
            identical = int(np.sum(p.view(np.int32) == tp.view(np.int32)))
            print(f"{case}: {name}: {identical} of {p.size} values bit-identical, largest |difference| "
                  f"{np.max(error):.3g}, {np.max(error / allowed):.3g} of the bound ({clipped} of {steps} updates "
                  "clipped)", file=sys.stderr)
            if exact:
                for label, a, b in (("values", p, tp), ("exp_avg", m, tm), ("exp_avg_sq", v, tv)):
                    self.assertTrue(np.array_equal(a.view(np.int32), b.view(np.int32)),
                                    f"{case}: {name} {label} differ in {np.sum(a.view(np.int32) != b.view(np.int32))}"
                                    f" of {a.size} elements")
            worst = int(np.argmax(error / allowed))
            self.assertTrue(np.all(error <= allowed),
                            f"{case}: {name}[{worst}] = {p.flat[worst]!r}, torch {tp.flat[worst]!r}, "
                            f"allowed {allowed.flat[worst]:.3g}")
            # The moments average the same (clipped) gradients: v to 4 N float epsilons relative, m to the
            # same scale as in the C++ test plus the coefficient's last bits.
            v_allowed = 4 * steps * eps32 * tv.astype(np.float64) + 1e-38
            self.assertTrue(np.all(np.abs(v.astype(np.float64) - tv) <= v_allowed), f"{case}: {name} exp_avg_sq")
            m_scale = np.abs(tm.astype(np.float64)) + np.sqrt(tv.astype(np.float64) / (1 - 0.999))
            m_allowed = 20 * eps32 * m_scale + 1e-38
            self.assertTrue(np.all(np.abs(m.astype(np.float64) - tm) <= m_allowed), f"{case}: {name} exp_avg")

    def test_without_clipping(self):
        self.compare("no_clipping", steps=40, peak_lr=1e-2, warmup=5, weight_decay=0.01, max_norm=None, seed=1)

    def test_with_clipping_and_strong_weight_decay(self):
        # max_norm near the median norm: about half the updates are clipped.
        _, gradients = make_problem(2, 40)
        norms = np.sqrt(sum(np.sum(g.astype(np.float64).reshape(40, -1) ** 2, axis=1) for g in gradients))
        self.compare("clipping", steps=40, peak_lr=3e-2, warmup=3, weight_decay=0.3,
                     max_norm=float(np.median(norms)), seed=2)

    def test_no_warmup(self):
        self.compare("no_warmup", steps=25, peak_lr=5e-3, warmup=0, weight_decay=0.0, max_norm=1.0, seed=3)

    def test_thread_counts_give_the_same_bits(self):
        values, gradients = make_problem(4, 6)
        one = self.run_fnet("threads_1", values, gradients, 6, 1e-2, 2, 0.01, 0.5, threads=1)
        three = self.run_fnet("threads_3", values, gradients, 6, 1e-2, 2, 0.01, 0.5, threads=3)
        for a, b in zip(one[0] + one[1] + one[2] + [one[3]], three[0] + three[1] + three[2] + [three[3]]):
            self.assertTrue(np.array_equal(a.view(np.int32), b.view(np.int32)))


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--optimizer-steps":
        print("usage: test_optimizer.py --optimizer-steps PATH [unittest args]", file=sys.stderr)
        sys.exit(2)
    OPTIMIZER_STEPS = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
