package web

import (
	"fmt"
	"net/http"
	"strings"
)

// The URLs the pages link to; the handlers serve exactly these.

func sourceURL(id int64) string { return fmt.Sprintf("/sources/%d", id) }
func backupURL(id int64) string { return fmt.Sprintf("/backups/%d", id) }
func jobURL(id int64) string    { return fmt.Sprintf("/jobs/%d", id) }

// Element ids that the websocket targets; see the package documentation.

func progressID(jobID int64) string    { return fmt.Sprintf("job-%d-progress", jobID) }
func jobRowID(jobID int64) string      { return fmt.Sprintf("job-%d", jobID) }
func jobStateID(jobID int64) string    { return fmt.Sprintf("job-%d-state", jobID) }
func jobEventsID(jobID int64) string   { return fmt.Sprintf("job-%d-events", jobID) }
func backupRowID(id int64) string      { return fmt.Sprintf("backup-%d", id) }
func sourceCardID(id int64) string     { return fmt.Sprintf("source-%d", id) }
func sourceCardNameID(id int64) string { return fmt.Sprintf("source-%d-name", id) }

// backupRowsID and jobRowsID are the table bodies new rows are prepended to.
const (
	backupRowsID = "backup-rows"
	jobRowsID    = "job-rows"
)

// progressLabel is the accessible name of a job's progress bar.
func progressLabel(p JobProgressVM) string { return fmt.Sprintf("Progress of job %d", p.JobID) }

// runningPhase is the heading of a running job's progress.
func runningPhase(phase string) string {
	if phase == "" {
		return "Running"
	}
	return capitalize(phase)
}

// progressStats is the one-line summary of a running job: "1.2 GiB of 3.4 GiB ·
// 85 MiB/s · about 25 s left".
func progressStats(p JobProgressVM) string {
	var parts []string
	switch {
	case p.Total > 0:
		parts = append(parts, Bytes(p.Done)+" of "+Bytes(p.Total))
	case p.Done > 0:
		parts = append(parts, Bytes(p.Done)+" copied")
	default:
		parts = append(parts, "Starting")
	}
	if r := Rate(p.RatePerSec); r != "" {
		parts = append(parts, r)
	}
	if p.ETA > 0 {
		parts = append(parts, "about "+Duration(p.ETA)+" left")
	}
	return strings.Join(parts, " · ")
}

// pageFirst and pageLast are the 1-based positions of the first and last rows of p.
func pageFirst(p Pager) int64 { return int64(p.Page-1)*int64(p.PerPage) + 1 }
func pageLast(p Pager) int64  { return min(int64(p.Page)*int64(p.PerPage), p.Total) }

// errorTitle is the headline of an error: its title, else the status text.
func errorTitle(vm ErrorVM) string {
	if vm.Title != "" {
		return vm.Title
	}
	if t := http.StatusText(vm.Status); t != "" {
		return t
	}
	return "Something went wrong"
}
