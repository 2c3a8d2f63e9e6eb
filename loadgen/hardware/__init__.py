"""Hardware tier: accelerator profiles and the roofline model of LLM serving."""
