//! EVE JSON output, as Suricata writes it: one complete JSON object per
//! line. The flow tracker worker ends each connection in one `flow` record
//! in the container's address space; `stats` events report the pipeline.
