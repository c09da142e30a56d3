package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/proxy"
)

// UpstreamTLSConfig is TLS to the upstream Redis (upstream.tls.*). Paths are
// not secrets; the key file's contents are never logged or printed.
type UpstreamTLSConfig struct {
	Enabled    bool   `mapstructure:"enabled"`
	CAFile     string `mapstructure:"ca_file"`     // "": the system roots
	ServerName string `mapstructure:"server_name"` // "": the host of upstream.address
	CertFile   string `mapstructure:"cert_file"`   // client certificate, for Redis's tls-auth-clients
	KeyFile    string `mapstructure:"key_file"`
	// InsecureSkipVerify accepts any server certificate. Only when asked;
	// logged as a warning at start.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
}

func (c UpstreamTLSConfig) validate() error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("upstream.tls.cert_file, upstream.tls.key_file: set both or neither"))
	}
	if !c.Enabled && (c.CAFile != "" || c.ServerName != "" || c.CertFile != "" || c.KeyFile != "" || c.InsecureSkipVerify) {
		errs = append(errs, errors.New("upstream.tls: options are set but upstream.tls.enabled is false"))
	}
	return errors.Join(errs...)
}

// clientConfig reads the CA and client certificate files and returns the
// config to dial address with; nil when upstream TLS is off.
func (c UpstreamTLSConfig) clientConfig(address string) (*tls.Config, error) {
	if !c.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify}
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(address)
	}
	if c.CAFile != "" {
		roots, err := proxy.LoadCertPool(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream.tls.ca_file: %w", err)
		}
		cfg.RootCAs = roots
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("upstream.tls.cert_file %s, upstream.tls.key_file %s: %w", c.CertFile, c.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// upstreamPoolConfig is poolConfig with upstream TLS loaded.
func (c Config) upstreamPoolConfig(log *slog.Logger) (pool.Config, error) {
	pc := c.poolConfig()
	tc, err := c.Upstream.TLS.clientConfig(pc.WithDefaults().Address)
	if err != nil {
		return pc, err
	}
	if tc != nil && tc.InsecureSkipVerify {
		log.Warn("upstream.tls.insecure_skip_verify is set: the upstream's certificate is NOT verified; anyone on the path can impersonate Redis")
	}
	pc.TLS = tc
	return pc, nil
}

// boundListener is one client listener and what protects it.
type boundListener struct {
	net.Listener
	key       string // config key it came from: "listen" or "tls.listen"
	tls       bool
	mutualTLS bool
}

// openListeners opens the client listeners: listen (TLS itself when a
// certificate is configured and tls.listen is not) and tls.listen.
func openListeners(cfg Config, log *slog.Logger) ([]boundListener, error) {
	listen := cfg.proxyConfig().WithDefaults().Listen
	if !cfg.TLS.Enabled() {
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		return []boundListener{{Listener: l, key: "listen"}}, nil
	}
	serverTLS, err := cfg.TLS.ServerConfig(log)
	if err != nil {
		return nil, err
	}
	var out []boundListener
	if cfg.TLS.Listen != "" {
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		out = append(out, boundListener{Listener: l, key: "listen"})
	}
	key, addr := "listen", listen
	if cfg.TLS.Listen != "" {
		key, addr = "tls.listen", cfg.TLS.Listen
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		closeListeners(out)
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	tl := proxy.NewTLSListener(l, serverTLS, cfg.TLS.HandshakeTimeout, log)
	return append(out, boundListener{Listener: tl, key: key, tls: true, mutualTLS: cfg.TLS.MutualTLS()}), nil
}

func closeListeners(ls []boundListener) {
	for _, l := range ls {
		l.Close()
	}
}
