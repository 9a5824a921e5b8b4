package config

import (
	"os"
	"testing"

	"github.com/berthhq/berth/internal/builtin"
)

// TestMain registers the built-in drivers and stores, as berthcmd does
// before it reads a configuration.
func TestMain(m *testing.M) {
	builtin.Register()
	os.Exit(m.Run())
}
