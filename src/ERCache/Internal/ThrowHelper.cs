using System.Diagnostics.CodeAnalysis;

namespace ERCache.Internal;

/// <summary>Throw sites kept out of hot methods so those stay small enough to inline.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void ThrowDisposed() => throw new ObjectDisposedException(nameof(EmbeddingCache));

    [DoesNotReturn]
    public static void ThrowUnknownModel(string model, IReadOnlyCollection<string> known) =>
        throw new ArgumentException(
            $"Unknown model '{model}'. Configured models: {(known.Count == 0 ? "(none)" : string.Join(", ", known.Order(StringComparer.Ordinal)))}.",
            nameof(model));

    [DoesNotReturn]
    public static void ThrowDestinationLength(string paramName, ModelPolicy policy, int actual, int users) =>
        throw new ArgumentException(
            $"The destination has {actual} floats but model '{policy.Name}' needs {users} × Dimensions ({policy.Dimensions}) = {(long)users * policy.Dimensions}.",
            paramName);

    [DoesNotReturn]
    public static void ThrowResultsLength(string paramName, int actual, int users) =>
        throw new ArgumentException($"The results buffer has {actual} elements but {users} users were requested; it needs exactly one per user.", paramName);

    [DoesNotReturn]
    public static void ThrowNoInference(string model) =>
        throw new InvalidOperationException(
            $"Model '{model}' is configured but has no inference registered: call AddModel(\"{model}\", inference) or register a keyed IEmbeddingInference.");
}
