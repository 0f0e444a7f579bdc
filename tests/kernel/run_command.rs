//! `ringsieve run` end to end: its pcapng, read back with tshark, holds exactly the frames sent.
