namespace ERCache.Inference;

/// <summary>A caller's handle on one user's inference: the outcome task, and the pending item when one was queued
/// (null when the miss was refused at once), to tell a timeout (started) from a shed (never started).</summary>
internal readonly record struct InferenceTicket(Task<InferenceOutcome> Task, PendingInference? Pending);
