"""Models: plain networks, losses and helpers, and the LightningModule that trains them."""
