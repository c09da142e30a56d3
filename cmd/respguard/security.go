package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/respguard/respguard/policy"
)

// SecurityConfig is protected mode and AUTH rate limiting (security.*).
type SecurityConfig struct {
	// ProtectedMode refuses to serve a non-loopback address without
	// authentication (true; set false deliberately to override).
	ProtectedMode bool `mapstructure:"protected_mode"`
	// AuthRateLimit is the failed AUTH attempts allowed per client IP per
	// minute (10; 0 = unlimited).
	AuthRateLimit int `mapstructure:"auth_rate_limit"`
}

// DefaultAuthRateLimit is security.auth_rate_limit's default.
const DefaultAuthRateLimit = 10

func (c SecurityConfig) validate() error {
	if c.AuthRateLimit < 0 {
		return errors.New("security.auth_rate_limit: must not be negative (0 turns limiting off)")
	}
	return nil
}

// ErrProtectedMode is returned when protected mode refuses to serve.
var ErrProtectedMode = errors.New("protected mode")

// checkProtectedMode refuses a listener bound to a non-loopback address
// that nobody has to authenticate on: the policy lets the default user in
// without a password and the listener does not require client certificates.
// With security.protected_mode false it only warns.
func checkProtectedMode(sec SecurityConfig, listeners []boundListener, pol *policy.Policy, log *slog.Logger) error {
	if pol.AuthRequired() {
		return nil
	}
	for _, l := range listeners {
		if isLoopback(l.Addr()) || l.mutualTLS {
			continue
		}
		if !sec.ProtectedMode {
			log.Warn("protected mode is off: serving a non-loopback address without authentication; anyone who can reach it can run any command",
				l.key, l.Addr().String())
			continue
		}
		return fmt.Errorf("%w: refusing to start: %s %s is not a loopback address and no authentication is configured "+
			"(the policy's default user is enabled with no password), so anyone who can reach this port could run any command on your Redis. "+
			"Fix one of: (1) require passwords: under policy.users give the default user a password (default: \"on >PASSWORD ~* &* +@all\") "+
			"or turn it off (default: \"off\") and add users with passwords; "+
			"(2) listen on a loopback address such as 127.0.0.1; "+
			"(3) require client certificates with tls.client_ca_file on a TLS listener; "+
			"(4) only if a firewall or network policy already restricts who can connect, set security.protected_mode: false",
			ErrProtectedMode, l.key, l.Addr())
	}
	return nil
}

// isLoopback reports whether a listener's bound address is a loopback one
// (":6380" and "0.0.0.0:6380" are bound to every interface: not loopback).
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
