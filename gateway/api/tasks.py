"""Handlers: tasks (list, read, change, create, done, snooze)."""

from __future__ import annotations

from aiohttp import web

from crm_core.services import tasks as svc
from gateway.api.common import actor, database, ok, path_id, read_body, read_query
from gateway.api.responses import TaskDoneOut, TaskOut
from gateway.api.schemas import (
    TaskCreate,
    TaskDone,
    TaskListQuery,
    TaskPatch,
    TaskReassign,
    TaskSnooze,
)
from gateway.openapi import operation

__all__ = ["ROUTES"]

W = (401, 403, 404, 409, 422)


@operation(
    summary="List tasks (filters: assignee_id, status, due=today|week|overdue, due_from, "
    "due_before, links)",
    tag="tasks",
    query=TaskListQuery,
    response=TaskOut,
    many=True,
)
async def list_tasks(request: web.Request) -> web.Response:
    flt = read_query(request, TaskListQuery).to_filter()
    async with database(request).sessions() as s:
        page = await svc.list_tasks(s, actor(request), flt)
    return ok(page.as_dict())


@operation(
    summary="Create a task", tag="tasks", body=TaskCreate, response=TaskOut, status=201, errors=W
)
async def create_task(request: web.Request) -> web.Response:
    body = await read_body(request, TaskCreate)
    async with database(request).transaction() as s:
        task = await svc.create_task(s, actor(request), body.model_dump())
        out = (await svc.task_dicts(s, [task]))[0]
    return ok(out, 201)


@operation(summary="Get a task", tag="tasks", response=TaskOut)
async def get_task(request: web.Request) -> web.Response:
    async with database(request).sessions() as s:
        task = await svc.get_task(s, actor(request), path_id(request))
        out = (await svc.task_dicts(s, [task]))[0]
    return ok(out)


@operation(summary="Change a task", tag="tasks", body=TaskPatch, response=TaskOut, errors=W)
async def patch_task(request: web.Request) -> web.Response:
    task_id = path_id(request)
    body = await read_body(request, TaskPatch)
    async with database(request).transaction() as s:
        changes = body.model_dump(exclude_unset=True)
        task = await svc.update_task(s, actor(request), task_id, changes)
        out = (await svc.task_dicts(s, [task]))[0]
    return ok(out)


@operation(
    summary="Mark a task done: its result, and optionally the next task",
    tag="tasks",
    body=TaskDone,
    response=TaskDoneOut,
    errors=W,
)
async def done_task(request: web.Request) -> web.Response:
    task_id = path_id(request)
    body = await read_body(request, TaskDone)
    nxt = body.next.model_dump() if body.next is not None else None
    async with database(request).transaction() as s:
        task, following = await svc.complete_task(
            s, actor(request), task_id, body.note, result=body.result, next_task=nxt
        )
        out = (await svc.task_dicts(s, [task]))[0]
        out["next_task"] = (await svc.task_dicts(s, [following]))[0] if following else None
    return ok(out)


@operation(
    summary="Snooze a task: until a time, for some minutes or by a preset",
    tag="tasks",
    body=TaskSnooze,
    response=TaskOut,
    errors=W,
)
async def snooze_task(request: web.Request) -> web.Response:
    task_id = path_id(request)
    body = await read_body(request, TaskSnooze)
    async with database(request).transaction() as s:
        task = await svc.snooze_task(
            s,
            actor(request),
            task_id,
            until=body.until,
            minutes=body.minutes,
            until_local=body.until_local,
            preset=body.preset,
        )
        out = (await svc.task_dicts(s, [task]))[0]
    return ok(out)


@operation(
    summary="Give a task to someone else (a supervisor: their team)",
    tag="tasks",
    body=TaskReassign,
    response=TaskOut,
    errors=W,
)
async def reassign_task(request: web.Request) -> web.Response:
    task_id = path_id(request)
    body = await read_body(request, TaskReassign)
    async with database(request).transaction() as s:
        task = await svc.reassign_task(s, actor(request), task_id, body.assignee_id)
        out = (await svc.task_dicts(s, [task]))[0]
    return ok(out)


ROUTES = [
    ("GET", "/tasks", list_tasks),
    ("POST", "/tasks", create_task),
    ("GET", "/tasks/{id}", get_task),
    ("PATCH", "/tasks/{id}", patch_task),
    ("POST", "/tasks/{id}/done", done_task),
    ("POST", "/tasks/{id}/snooze", snooze_task),
    ("POST", "/tasks/{id}/reassign", reassign_task),
]
