package pg_test

import (
	"os"
	"testing"

	"github.com/backstop/backstop/jobs/pg/pgtest"
)

// sharedPassword is the superuser's password on the shared cluster, which
// uses scram-sha-256 so that tests can get authentication wrong.
const sharedPassword = "backstop-test-pw"

// shared is the cluster that tests share where isolation allows: they
// create their own roles and databases in it.
var shared = pgtest.NewShared(pgtest.Password(sharedPassword))

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close()
	os.Exit(code)
}
