//go:build !linux

package proxy

import "errors"

// parker is not available on this platform: idle sessions keep their
// reader goroutine.
type parker struct{}

func newParker() (*parker, error) {
	return nil, errors.New("proxy: parking idle clients needs Linux (epoll)")
}

func (p *parker) add(*session, int) error { return errors.New("proxy: no parker") }
func (p *parker) forget(*session)         {}
func (p *parker) run() error              { return nil }
func (p *parker) stop() []*session        { return nil }
