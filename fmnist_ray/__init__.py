"""fmnist-ray: ablation studies of small Fashion-MNIST classifiers, trained in parallel on Ray,
with per-epoch results in Parquet and reports with statistics across seeds."""

__version__ = "0.1.0"
