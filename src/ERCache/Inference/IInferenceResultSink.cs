namespace ERCache.Inference;

/// <summary>
/// Takes the rows of a delegate call that completed. The scheduler calls it once per user, before the user's waiters
/// are released; the model runtime implements it and applies the request contract there (validate, write the tiers,
/// late results), so the scheduler never touches a tier.
/// </summary>
internal interface IInferenceResultSink
{
    /// <summary>Row <paramref name="index"/> of <paramref name="batch"/> as the outcome its waiters receive.</summary>
    /// <param name="batch">The completed call's users and rows.</param>
    /// <param name="index">The row.</param>
    /// <param name="startedAt">When the call started (timestamp): the time its row describes the user at, which a
    /// regional write is stamped with (a removal or push made meanwhile is newer).</param>
    /// <param name="completedAt">When the call completed (timestamp).</param>
    /// <param name="item">The user's pending inference: its waiters' latest deadline (a result after it is late), whether
    /// it is background work, and whether its result may still be written.</param>
    InferenceOutcome Accept(InferenceBatch batch, int index, long startedAt, long completedAt, PendingInference item);
}
