"""How a task and its upstream outputs become one prompt text (the layout the README documents)."""

from __future__ import annotations

from providers.models import AITask


def render_prompt(task: AITask) -> str:
    """The task's prompt, preceded by each upstream task's output in a fenced, labelled block.

    Layout:
        Context from earlier tasks:

        <output of="analyze">
        ...text...
        </output>

        Task (code_review): <prompt>
    """
    if not task.context:
        return task.prompt
    blocks = [f'<output of="{task_id}">\n{text}\n</output>' for task_id, text in task.context.items()]
    return "Context from earlier tasks:\n\n" + "\n\n".join(blocks) + f"\n\nTask ({task.type}): {task.prompt}"
