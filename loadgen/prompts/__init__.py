"""Prompts layer (top of the data flow): prompt sets loaded from files or synthesised."""

from loadgen.prompts.model import Prompt, PromptPicker

__all__ = ["Prompt", "PromptPicker"]
