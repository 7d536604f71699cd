namespace ERCache.Inference;

/// <summary>A caller's handle on one user's inference: the outcome task, the pending item when one was queued (null
/// when the miss was refused at once), to tell a timeout (started) from a shed (never started), and whether this caller
/// created it (its buffer may receive the row directly, so it must detach when it stops waiting).</summary>
internal readonly record struct InferenceTicket(Task<InferenceOutcome> Task, PendingInference? Pending, bool Creator = false);
