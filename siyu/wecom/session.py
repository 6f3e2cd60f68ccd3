"""One WeCom client per brand for the length of a job (a 会话): the callback processing job reads the customer
from WeCom, sends the welcome message and moves the live code on, three calls that would otherwise each look
up the connection, decrypt its secrets and open a new HTTP connection.

`client_session()` opens the session (the callback job does, see siyu.wecom.services.raw_callbacks_process);
inside it `wecom_client(connection)` and `session_connection(tenant_id)` hand out the session's connection and
client, kept open (HTTP keep-alive) until the session ends. Outside a session, and whenever a caller passes its
own client factory (tests on a fake transport), every call gets a fresh client as before. The session lives in a
context variable, so it is the job's own: other threads (the worker's recovery sweep) never see it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from siyu.wecom.client import WeComClient
from siyu.wecom.models import WeComConnection
from siyu.wecom.selectors import connection_client, connection_for_tenant

ClientFactory = Callable[[WeComConnection], WeComClient]


@dataclass
class _Session:
    connections: dict[int, WeComConnection | None] = field(default_factory=dict)  # by tenant id
    # By connection id and the ciphertexts the client was built from: a secret changed mid-job is a new client.
    clients: dict[tuple[int, str, str], WeComClient] = field(default_factory=dict)


_session: ContextVar[_Session | None] = ContextVar("siyu_wecom_session", default=None)


@contextmanager
def client_session() -> Iterator[None]:
    """Share connections and clients for the block; a session inside a session is the outer one."""
    if _session.get() is not None:
        yield
        return
    session = _Session()
    token = _session.set(session)
    try:
        yield
    finally:
        _session.reset(token)
        for client in session.clients.values():
            client.close()


def session_connection(tenant_id: int) -> WeComConnection | None:
    """The brand's WeCom connection (read once per session)."""
    session = _session.get()
    if session is None:
        return connection_for_tenant(tenant_id=tenant_id)
    if tenant_id not in session.connections:
        session.connections[tenant_id] = connection_for_tenant(tenant_id=tenant_id)
    return session.connections[tenant_id]


@contextmanager
def wecom_client(connection: WeComConnection, factory: ClientFactory | None = None) -> Iterator[WeComClient]:
    """A client for `connection`: `factory`'s (closed afterwards) when given, else the session's shared one."""
    session = _session.get()
    if factory is not None or session is None:
        with (factory or connection_client)(connection) as client:
            yield client
        return
    session.connections.setdefault(connection.tenant_id, connection)
    key = (connection.id, connection.api_base_url, connection.contact_secret_enc)
    client = session.clients.get(key)
    if client is None:
        client = session.clients[key] = connection_client(connection)
    yield client
