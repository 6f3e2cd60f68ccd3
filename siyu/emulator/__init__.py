"""The offline WeCom: a separate HTTP server that behaves like qyapi.weixin.qq.com for siyu's demos and tests.

It is a plain WSGI application (`core.Emulator`) with its own in-memory state of one or more corps (model.py),
snapshotted to VAR_DIR/emulator/state.json; it imports no Django and never touches siyu's database. Django only
hosts the `siyu emulator` command that serves it (gunicorn, one worker; or a threaded stdlib server).

    siyu emulator                        # 127.0.0.1:8001, seed 1, resumes VAR_DIR/emulator/state.json
    siyu emulator --reset --seed 2 --customers 5000 --callback-url http://127.0.0.1:8000/wecom/callback/
    siyu emulator --fault-45009 0.05 --latency-ms 50 --rate-limit 600/60
    siyu emulator --simulate-rate 2      # simulated customers act twice a second: live activity for the demo

Modules: cgi/ (WeCom's /cgi-bin/ endpoints by area), actions.py (what users do in the WeCom client: changes that
fire callbacks), simulator.py (seeded customers driving those actions, with a ground-truth record), inheritance.py
(customer/group transfer rules and their 24-hour completion, settled by time), callbacks.py (event XML,
signed/encrypted delivery with retries), admin.py (/emulator/ admin surface for tests and the demo), faults.py,
limits.py, clock.py, seed.py, server.py.
Tests: serve_in_thread(Emulator(EmulatorConfig(...), [build_corp(SeedSpec(...))])) on a free port.
"""
