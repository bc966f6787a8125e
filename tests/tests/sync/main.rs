//! Tests of the TestIO side: the simulator, and (with the sync issue) the worker against it.

mod simulator;
