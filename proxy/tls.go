package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// TLSConfig is TLS for clients (the config section "tls"). The zero value
// means no TLS. Paths are not secrets and may be logged; the files' contents
// never are.
type TLSConfig struct {
	CertFile     string `mapstructure:"cert_file"`      // server certificate (PEM; chain allowed)
	KeyFile      string `mapstructure:"key_file"`       // its private key (PEM)
	ClientCAFile string `mapstructure:"client_ca_file"` // "": no client certificates; set: mutual TLS, a verified client certificate is required
	MinVersion   string `mapstructure:"min_version"`    // "1.2" (default) or "1.3"
	// Listen is a separate address for TLS. "": the main listen address
	// serves TLS itself (when CertFile is set). Set: listen stays plaintext.
	Listen           string        `mapstructure:"listen"`
	HandshakeTimeout time.Duration `mapstructure:"handshake_timeout"` // a client must finish the handshake within (10s)
}

// DefaultHandshakeTimeout bounds a client's TLS handshake.
const DefaultHandshakeTimeout = 10 * time.Second

// Enabled reports whether a certificate is configured.
func (c TLSConfig) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

// MutualTLS reports whether clients must present a certificate.
func (c TLSConfig) MutualTLS() bool { return c.Enabled() && c.ClientCAFile != "" }

// Validate reports every invalid field, named by its config key.
func (c TLSConfig) Validate() error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("tls.cert_file, tls.key_file: set both or neither"))
	}
	if !c.Enabled() && c.ClientCAFile != "" {
		errs = append(errs, errors.New("tls.client_ca_file: needs tls.cert_file and tls.key_file"))
	}
	if !c.Enabled() && c.Listen != "" {
		errs = append(errs, errors.New("tls.listen: needs tls.cert_file and tls.key_file"))
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("tls.listen: %w", err))
		}
	}
	if _, err := TLSVersion(c.MinVersion); err != nil {
		errs = append(errs, fmt.Errorf("tls.min_version: %w", err))
	}
	if c.HandshakeTimeout < 0 {
		errs = append(errs, errors.New("tls.handshake_timeout: must not be negative"))
	}
	return errors.Join(errs...)
}

// TLSVersion parses "1.2" or "1.3" ("" means 1.2).
func TLSVersion(s string) (uint16, error) {
	switch strings.TrimSpace(s) {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q is not a supported TLS version (use \"1.2\" or \"1.3\")", s)
}

// ServerConfig reads the certificate (and client CA) files now, failing if
// they are unusable, and returns a config that re-reads them whenever their
// modification time or size changes, checked at each new handshake: rotated
// certificates are served to new connections without a restart. A rotation
// that leaves the files unusable (say, the key not yet written) is logged and
// the previous certificates stay in use. log may be nil.
func (c TLSConfig) ServerConfig(log *slog.Logger) (*tls.Config, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	minVersion, err := TLSVersion(c.MinVersion)
	if err != nil {
		return nil, fmt.Errorf("tls.min_version: %w", err)
	}
	r := &certReloader{cfg: c, minVersion: minVersion, log: log}
	if _, err := r.reload(); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: minVersion, GetConfigForClient: r.configForClient}, nil
}

// certReloader serves the current certificates, reloading them when their
// files change.
type certReloader struct {
	cfg        TLSConfig
	minVersion uint16
	log        *slog.Logger

	mu      sync.Mutex // guards the fields below
	stamp   string     // of the files as last read (successfully or not)
	current *tls.Config
}

func (r *certReloader) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	if _, err := r.reload(); err != nil {
		r.log.Error("tls: certificate files changed but cannot be used; serving the previous certificate",
			"cert_file", r.cfg.CertFile, "key_file", r.cfg.KeyFile, "client_ca_file", r.cfg.ClientCAFile, "error", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current, nil
}

// reload reads the files if they changed since the last attempt; it reports
// whether it read them and the error of a failed reading.
func (r *certReloader) reload() (bool, error) {
	stamp := filesStamp(r.cfg.CertFile, r.cfg.KeyFile, r.cfg.ClientCAFile)
	r.mu.Lock()
	defer r.mu.Unlock()
	if stamp == r.stamp {
		return false, nil
	}
	r.stamp = stamp // a broken rotation is reported once, not at every handshake
	cfg, err := r.load()
	if err != nil {
		return true, err
	}
	if r.current != nil {
		r.log.Info("tls: certificates reloaded", "cert_file", r.cfg.CertFile)
	}
	r.current = cfg
	return true, nil
}

func (r *certReloader) load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(r.cfg.CertFile, r.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file %s, tls.key_file %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	cfg := &tls.Config{MinVersion: r.minVersion, Certificates: []tls.Certificate{cert}}
	if r.cfg.ClientCAFile != "" {
		pool, err := LoadCertPool(r.cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca_file: %w", err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// LoadCertPool reads PEM certificates from path into a new pool.
func LoadCertPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificates found", path)
	}
	return pool, nil
}

// filesStamp identifies the files' current versions by size and
// modification time ("" paths are skipped; a missing file is part of the stamp).
func filesStamp(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p) // follows symlinks: Kubernetes secret swaps are seen
		if err != nil {
			fmt.Fprintf(&b, "%s:missing;", p)
			continue
		}
		fmt.Fprintf(&b, "%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

// NewTLSListener returns a listener whose connections speak TLS with cfg.
// Each handshake runs on its own goroutine, not on Serve's accept loop, and
// must finish within timeout (0: DefaultHandshakeTimeout), or the
// connection is closed: a client that stalls the handshake holds nothing
// for longer. The session's first read waits for the handshake. log may be nil.
func NewTLSListener(l net.Listener, cfg *tls.Config, timeout time.Duration, log *slog.Logger) net.Listener {
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &tlsListener{Listener: l, cfg: cfg, timeout: timeout, log: log}
}

type tlsListener struct {
	net.Listener
	cfg     *tls.Config
	timeout time.Duration
	log     *slog.Logger
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := tls.Server(c, l.cfg)
	go l.handshake(tc)
	return tc, nil
}

// handshake runs tc's handshake under the timeout; on expiry HandshakeContext
// closes the connection, which ends the session waiting on it.
func (l *tlsListener) handshake(tc *tls.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = tc.Close()
		l.log.Debug("tls handshake failed", "client", tc.RemoteAddr().String(), "error", err)
	}
}
