namespace ERCache.Inference;

/// <summary>
/// A user model ("user tower"): computes embeddings for a batch of users. Register one per model, in code with
/// <c>AddModel("name", inference)</c> or in DI as a keyed service (key = model name).
/// </summary>
public interface IEmbeddingInference
{
    /// <summary>
    /// Writes one vector per user of <paramref name="batch"/> into <see cref="InferenceBatch.Destination"/>
    /// (row <c>i</c> for <c>batch.UserIds[i]</c>), or reports a user as failed with
    /// <see cref="InferenceBatch.Fail(int)"/>. Throwing fails the whole batch.
    /// </summary>
    /// <param name="batch">The users and the buffer to fill. Valid until the returned task completes, and not after:
    /// the cache copies the rows out when it completes and reuses the buffer for a later batch of other users, so a
    /// write after completion (a fire-and-forget fill, a task not awaited) lands in another user's row and can be
    /// served as that user's embedding. The cache cannot detect it; complete the task only once every write is done.</param>
    /// <param name="cancellationToken">Cancelled at the model's <c>Inference:HardTimeout</c>; a caller giving up never cancels it.</param>
    ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken);
}
