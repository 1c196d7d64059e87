"""One run on one device: the data on the device, the model, the step (eager or a CUDA graph), and
`train_run` (pure: no files, no Ray, no printing). The only part that needs torch."""
