// Package resp reads Redis requests and frames Redis replies (RESP2 and RESP3)
// with bounded memory, without materializing values it only forwards.
//
// RequestReader parses client commands (multibulk and inline) into argument
// slices that point into its own buffer; ReplyReader streams upstream replies
// to a Sink chunk by chunk, so a 512 MB bulk reply is never held whole.
// Append* helpers encode the replies respguard makes itself.
package resp
