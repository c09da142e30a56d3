package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// CA is a throwaway certificate authority for TLS tests. Its certificate is
// at CertFile; the certificates it issues are valid for 127.0.0.1, ::1,
// 127.0.0.2 and localhost, for both server and client authentication.
type CA struct {
	CertFile string

	t    testing.TB
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// KeyPair is a certificate and its key as PEM files, and its serial number.
type KeyPair struct {
	CertFile, KeyFile string
	Serial            *big.Int
}

// NewCA creates a CA in a fresh t.TempDir().
func NewCA(t testing.TB) *CA {
	t.Helper()
	ca := &CA{t: t, dir: t.TempDir()}
	ca.key = newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(t), Subject: pkix.Name{CommonName: "respguard test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ca.key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	if ca.cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	ca.CertFile = filepath.Join(ca.dir, "ca.pem")
	writePEM(t, ca.CertFile, "CERTIFICATE", der)
	return ca
}

// Issue writes a new certificate named name (its common name) into the CA's
// directory.
func (ca *CA) Issue(name string) KeyPair {
	ca.t.Helper()
	return ca.IssueTo(name, filepath.Join(ca.dir, name+".pem"), filepath.Join(ca.dir, name+"-key.pem"))
}

// IssueTo writes a new certificate and key to certFile and keyFile, each
// replaced atomically (written aside, then renamed), as a rotation would.
func (ca *CA) IssueTo(name, certFile, keyFile string) KeyPair {
	ca.t.Helper()
	key := newKey(ca.t)
	serial := newSerial(ca.t)
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	writePEM(ca.t, keyFile, "PRIVATE KEY", keyDER)
	writePEM(ca.t, certFile, "CERTIFICATE", der)
	return KeyPair{CertFile: certFile, KeyFile: keyFile, Serial: serial}
}

// Pool returns a cert pool holding the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// ClientConfig returns a TLS client config that trusts the CA and presents
// kp (when kp.CertFile is not empty).
func (ca *CA) ClientConfig(kp KeyPair) *tls.Config {
	ca.t.Helper()
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	if kp.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(kp.CertFile, kp.KeyFile)
		if err != nil {
			ca.t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func newSerial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// StartTLS launches redis-server serving TLS only (--port 0 --tls-port) on a
// free port with server's certificate. Redis requires clients to present a
// certificate issued by ca (tls-auth-clients yes) unless extra says
// otherwise. Stop works as for Start; Restart does not (it would start a
// plaintext server).
func StartTLS(t testing.TB, ca *CA, server KeyPair, extra ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not installed: %v", err)
		}
		t.Skip("redis-server not installed")
	}
	s := &Server{Port: FreePort(t), Dir: t.TempDir(), t: t}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	args := []string{
		"--port", "0", "--tls-port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--tls-cert-file", server.CertFile, "--tls-key-file", server.KeyFile, "--tls-ca-cert-file", ca.CertFile,
		"--save", "", "--appendonly", "no", "--dir", s.Dir,
		"--daemonize", "no", "--loglevel", "warning", "--logfile", filepath.Join(s.Dir, "redis.log"),
	}
	s.cmd = exec.Command("redis-server", append(args, extra...)...)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.done)
	t.Cleanup(s.Stop)
	client := ca.Issue("redistest-probe")
	cfg := ca.ClientConfig(client)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			t.Fatalf("redis-server exited at start: %s", log)
		default:
		}
		if pingTLS(s.Addr, cfg) == nil {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("redis-server (TLS) on %s not ready after 10s", s.Addr)
	return nil
}

func pingTLS(addr string, cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	return pingConn(c)
}
