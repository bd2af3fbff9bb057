"""Text preprocessing shared by training, evaluation and `run`: clean → split → chunk."""
