namespace ERCache.Inference;

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
