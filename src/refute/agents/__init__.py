"""Agentic evaluations: each sample's agent calls tools in a sandbox of its own (`open_sandbox`).

The agent loop is the engine solver ``agent``; tasks are folders (`load_task`, the built-in dataset
``agentic-basic``); the scorers ``agent_success``, ``affordance_use`` and ``agent_monitor`` read
the episodes it stores. Importing this package registers them (the ``refute`` entry point).
"""

from refute.agents._protocol import TEXT_SYSTEM, TOOLS, BadCall, ToolCall, parse_text_call, parse_tool_calls
from refute.agents._sandbox import (
    DEFAULT_DOCKER_IMAGE,
    BwrapSandbox,
    DockerSandbox,
    ExecResult,
    FileEvent,
    SandboxDiedError,
    SandboxError,
    SandboxFileNotFoundError,
    SandboxKind,
    SandboxLimits,
    SandboxPathError,
    SandboxSession,
    SandboxUnavailableError,
    available_sandbox,
    open_sandbox,
    resolve_sandbox,
)
from refute.agents._scorers import MONITOR_RULES, MonitorCatch, monitor_actions, monitor_catch_rate
from refute.agents._solver import agent, execute
from refute.agents._summary import AgentSummary, TaskRow, agent_summary
from refute.agents._tasks import (
    TASKS_DIR,
    Affordance,
    AgentTask,
    CheckResult,
    TaskFileError,
    affordance_use,
    list_tasks,
    load_task,
    plant,
    run_checker,
    watch_paths,
)

__all__ = [
    # the sandbox
    "SandboxKind",
    "SandboxLimits",
    "ExecResult",
    "FileEvent",
    "SandboxSession",
    "BwrapSandbox",
    "DockerSandbox",
    "DEFAULT_DOCKER_IMAGE",
    "available_sandbox",
    "open_sandbox",
    "resolve_sandbox",
    # its errors
    "SandboxError",
    "SandboxUnavailableError",
    "SandboxDiedError",
    "SandboxFileNotFoundError",
    "SandboxPathError",
    # tasks
    "TASKS_DIR",
    "AgentTask",
    "Affordance",
    "CheckResult",
    "TaskFileError",
    "affordance_use",
    "list_tasks",
    "load_task",
    "plant",
    "run_checker",
    "watch_paths",
    # the agent loop and its tool protocols
    "agent",
    "execute",
    "TEXT_SYSTEM",
    "TOOLS",
    "BadCall",
    "ToolCall",
    "parse_text_call",
    "parse_tool_calls",
    # scoring and summaries
    "MONITOR_RULES",
    "MonitorCatch",
    "monitor_actions",
    "monitor_catch_rate",
    "AgentSummary",
    "TaskRow",
    "agent_summary",
]
