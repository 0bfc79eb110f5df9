"""RoboAnnotate's data files (prompts, DeepSpeed configs, themes): a package only so that
installs carry it and `importlib.resources` finds it. Read it through core.resources."""

# core.resources checks this, so another distribution's top-level `resources` is never taken for ours.
PROJECT = "robo-annotate"
