"""queryAsyncJobResult and listAsyncJobs."""

from __future__ import annotations

from cloudd.api import access
from cloudd.api.context import CallContext
from cloudd.api.errors import invalid_value
from cloudd.api.fields import JOB_FIELDS, doc
from cloudd.api.paging import page_of
from cloudd.api.registry import ALL, Param, command
from cloudd.api.results import FlatResult, ListResult, Result
from cloudd.api.views import job_view
from cloudd.db.base import NotFound
from cloudd.db.jobs import Job

P = Param
ASYNCJOBS = doc("asyncjobs", *JOB_FIELDS)


def can_see_job(ctx: CallContext, job: Job) -> bool:
    caller = ctx.caller
    if caller.is_root_admin:
        return True
    if caller.is_admin:
        return job.domain_path.startswith(caller.domain_path)
    return job.account_id == caller.account.id


async def in_live_domain(ctx: CallContext, job: Job) -> bool:
    """Whether the job's domain still exists: a deleted domain's path may belong to a new domain now."""
    try:
        await ctx.api.db.domains.get(job.domain_id)
    except NotFound:
        return False
    return True


@command("queryAsyncJobResult", description="Retrieves the current status of asynchronous job.", roles=ALL,
         response=ASYNCJOBS, params=[P("jobid", "uuid", "the ID of the asynchronous job", required=True,
                                      related="queryAsyncJobResult")])
async def query_async_job_result(ctx: CallContext) -> Result:
    try:
        job = await ctx.api.db.jobs.get_by_uuid(ctx.get("jobid"))
    except NotFound:
        job = None
    if job is None or not can_see_job(ctx, job) or (
            ctx.caller.is_admin and not ctx.caller.is_root_admin and not await in_live_domain(ctx, job)):
        raise invalid_value(f"Unable to find async job with id {ctx.get('jobid')}")
    return FlatResult(job_view(job, with_ms=ctx.caller.is_root_admin))


@command("listAsyncJobs", description="Lists all pending asynchronous jobs for the account.", roles=ALL,
         response=ASYNCJOBS, listing=True, owned=True,
         params=[P("startdate", "date", "The start date of the async job (use format \"yyyy-MM-dd'T'HH:mm:ss'+'SSSS\")",
                   with_time=True),
                 P("id", "uuid", "the id of the async job", related="listAsyncJobs"),
                 P("managementserverid", "uuid", "The id of the management server", related="listManagementServers")])
async def list_async_jobs(ctx: CallContext) -> Result:
    scope = await access.owner_scope(ctx)
    start = ctx.get("startdate")
    total, jobs = await ctx.api.db.jobs.search(scope, uuid=ctx.get("id"),
                                             start=int(start) if start is not None else None,
                                             keyword=ctx.get("keyword"), page=page_of(ctx))
    return ListResult("asyncjobs", [job_view(j, with_ms=ctx.caller.is_root_admin) for j in jobs], total)
