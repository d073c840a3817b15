"""Training plumbing shared by the LightningModule and the callbacks: noise streams, per-step
scalars, fp16 loss scaling, speed options and the stop/roll-back actions. Not networks, not callbacks."""
