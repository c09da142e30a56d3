// Package top implements `respguard top`: a live terminal view of a running
// respguard, read from its admin endpoint (/metrics and the /debug tables).
package top
