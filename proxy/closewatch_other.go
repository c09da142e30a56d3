//go:build !unix

package proxy

// watchClose does not watch on this platform: a client held by CLIENT
// PAUSE that closes its connection is noticed when the pause ends.
func (s *session) watchClose() (closed <-chan struct{}, stop func()) { return nil, func() {} }

// onClientClose does not watch on this platform either.
func (s *session) onClientClose(func()) (stop func()) { return func() {} }
