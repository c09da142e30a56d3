package cluster

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind (refresh
// loops, pools, pipes).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
