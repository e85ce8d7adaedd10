"""WanPod worker."""
