"""Each dataset's study as data: what to vary, how to train, per-optimizer hyper-parameters.

`study` holds the grid and resources, `trial` every TrialConfig field shared by all trials, and
`optimizers` the fields that depend on the optimizer. Every value can be overridden from the CLI.
"""
from __future__ import annotations

PAPER_SEEDS = (0, 42, 314, 3407, 180698)

_COMMON_TRIAL = {
    "momentum": 0.9,  # SGD only
    "beta1": 0.9,  # Adam only
    "beta2": 0.999,  # Adam only
    "amsgrad": False,  # Adam only
    "plateau_patience": 1,  # epochs
    "plateau_factor": 0.5,
    "min_lr": 1e-6,
    "num_workers": 0,  # 0: the uint8 data set lives on the trial's device
    "eval_batch_size": 1024,  # examples; changes no result
    # PyTorch's defaults, which the reference study ran with: TF32 convolutions, IEEE fp32 matmuls
    "conv_tf32": True,
    "matmul_tf32": False,
    "det_warn_only": False,
    "digest_batches": 2,  # leading batches whose pixels enter data_sha256
    "select": "last",
    "f1_average": "macro",
}

PRESETS: dict[str, dict] = {
    # scikit-learn's 1,797 real handwritten digits: the whole study on a laptop in minutes
    "digits": {
        "study": {"seeds": (0, 42), "optimizers": ("adam", "sgd"), "repeats": 3, "det_repeats": 2,
                  "gpus_per_trial": 0.25, "cpus_per_trial": 1},
        "trial": {**_COMMON_TRIAL, "dataset": "digits", "model": "small_cnn", "epochs": 15, "batch_size": 64,
                  "scheduler": "cosine", "crop_padding": 1, "hflip": False,  # digits are not mirror-symmetric
                  "mean": (0.30,), "std": (0.38,),  # of the 0..1-scaled pixels
                  "metrics": ("accuracy", "f1"), "metric": "accuracy"},
        "optimizers": {"adam": {"lr": 1e-3, "weight_decay": 0.0},
                       "sgd": {"lr": 0.05, "weight_decay": 5e-4}},
    },
    # the reference study's task 1: PreActResNet-18, 300 epochs, cosine schedule
    "cifar10": {
        "study": {"seeds": PAPER_SEEDS, "optimizers": ("adam", "sgd"), "repeats": 20, "det_repeats": 1,
                  "gpus_per_trial": 0.25, "cpus_per_trial": 2},
        "trial": {**_COMMON_TRIAL, "dataset": "cifar10", "model": "preactresnet18", "epochs": 300, "batch_size": 128,
                  "scheduler": "cosine", "crop_padding": 4, "hflip": True,
                  "mean": (0.4914, 0.4822, 0.4465), "std": (0.2023, 0.1994, 0.2010),
                  "metrics": ("accuracy", "f1"), "metric": "accuracy"},
        "optimizers": {"adam": {"lr": 0.01, "beta1": 0.851436, "beta2": 0.999689, "amsgrad": True, "weight_decay": 0.0},
                       "sgd": {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4}},
    },
}
