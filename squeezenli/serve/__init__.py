"""`squeezenli serve` and `squeezenli mcp`: pairs, zero-shot and claim checks over HTTP and
MCP, every client's pairs batched together (pip install 'squeezenli[serve]').

requests.py decodes a body into a typed request (or a 4xx naming the field), service.py
runs it through the library's tasks, app.py is the HTTP app (limits, auth, metrics, access
log), mcp.py the MCP tools, client.py what `--server URL` sends.
"""
