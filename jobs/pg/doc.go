// Package pg talks to PostgreSQL: it checks that a server can be backed up
// (CheckSource), streams a base backup over the replication protocol
// (BaseBackup, with a hardened tar reader and a backup manifest parser), and
// runs throwaway clusters for tests, the demo, restores and drills (Cluster).
//
// PostgreSQL refuses to run as root. When the current process is root, every
// server binary (initdb, pg_ctl, postgres) runs as the "postgres" OS user
// through runuser, and the directories the server touches are chowned to it.
package pg
