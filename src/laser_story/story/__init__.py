"""The story pipeline (StoryGPT-V): frame layout, frame prompts with character token spans, the character fuser,
and frame sampling with the story attention patches."""
