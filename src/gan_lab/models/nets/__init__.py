"""Plain ``nn.Module`` networks: no Lightning, no Hydra, reusable anywhere.

Contract shared by every network here:
- a generator maps ``(z: (N, latent_dim), y: (N,) | None) -> images (N, C, H, W)`` in [-1, 1];
- a discriminator maps ``(images, y | None) -> logits (N,)`` (raw scores, no sigmoid);
- both expose ``num_classes`` (0 = unconditional) so the training step knows whether to pass labels.
"""
