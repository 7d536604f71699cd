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
    /// <param name="batch">The users and the buffer to fill. Valid until the returned task completes.</param>
    /// <param name="cancellationToken">Cancelled at the model's <c>Inference:HardTimeout</c>; a caller giving up never cancels it.</param>
    ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken);
}

/// <summary>Delegate form of <see cref="IEmbeddingInference.InferAsync"/>.</summary>
/// <param name="batch">The users and the buffer to fill.</param>
/// <param name="cancellationToken">Cancelled at the model's <c>Inference:HardTimeout</c>; a caller giving up never cancels it.</param>
public delegate ValueTask EmbeddingInference(InferenceBatch batch, CancellationToken cancellationToken);

/// <summary>Adapts an <see cref="EmbeddingInference"/> delegate to <see cref="IEmbeddingInference"/>.</summary>
public sealed class DelegateInference : IEmbeddingInference
{
    private readonly EmbeddingInference _inference;

    /// <summary>Wraps <paramref name="inference"/>.</summary>
    public DelegateInference(EmbeddingInference inference)
    {
        ArgumentNullException.ThrowIfNull(inference);
        _inference = inference;
    }

    /// <inheritdoc />
    public ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken) => _inference(batch, cancellationToken);
}
