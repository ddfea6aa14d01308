"""Version 2 of the Open Inference Protocol (KServe V2): inference, repository, tensors."""
