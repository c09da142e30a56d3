// Package guard decides how respguard rewrites or refuses commands that would hurt Redis: DEL of big keys, unbounded reads of big collections; and finds big and hot keys from live traffic.
//
// A [Guard] is built once from a [Config] by [New] and is safe for concurrent
// use by every client session. It does no network I/O: the proxy asks
// [Guard.Plan] about each command before routing it and acts on the [Plan]:
//
//   - Pass: forward the command unchanged (the case for every command the
//     guard does not look at; it costs a few nanoseconds and no allocation).
//   - Rewrite: forward Plan.Args instead (DEL as UNLINK or as a Lua script
//     that chooses UNLINK or DEL per key, FLUSHALL ASYNC, XADD with MAXLEN ~).
//   - Reject: answer "-" + Plan.Err to the client without contacting Redis.
//   - Probe: run Plan.Probes (HLEN, LLEN, ZCOUNT, ...) on the upstream, then
//     call [Guard.Decide] with their integer replies to get Pass or Reject,
//     or feed them to a [Tally] a batch at a time, which settles as soon as
//     the replies so far decide. A probe that could not tell its size gets
//     the read refused ([Tally.Unchecked]).
//
// After a reply completes the proxy calls [Guard.Observe], which feeds a
// short-lived cache of collection sizes (so that repeated guarded reads skip
// their probes), a bounded top-K of the biggest keys, and a space-saving
// sketch of the hottest keys (counting a random sample of requests once
// warmed up). [Guard.Handler] serves both as JSON.
package guard
