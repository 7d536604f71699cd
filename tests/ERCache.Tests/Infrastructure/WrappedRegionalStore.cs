using ERCache.Regional;
using ERCache.Testing;

namespace ERCache.Tests.Infrastructure;

/// <summary>The in-memory store and its invalidation channel, passed through: a test's subclass overrides the calls
/// it breaks, holds or watches.</summary>
internal abstract class WrappedRegionalStore(InMemoryRegionalStore inner) : IRegionalStore, IRegionalInvalidation
{
    protected InMemoryRegionalStore Inner { get; } = inner;

    public virtual Task<byte[]?[]> ReadAsync(string field, ReadOnlyMemory<long> users, int valueBytes, CancellationToken cancellationToken) =>
        Inner.ReadAsync(field, users, valueBytes, cancellationToken);

    public virtual Task<RegionalWriteResult> WriteAsync(IReadOnlyList<RegionalWriteGroup> groups, CancellationToken cancellationToken) =>
        Inner.WriteAsync(groups, cancellationToken);

    public virtual Task RemoveAsync(long userId, string? field, long removedAtUnixMs, TimeSpan remember, CancellationToken cancellationToken) =>
        Inner.RemoveAsync(userId, field, removedAtUnixMs, remember, cancellationToken);

    public virtual Task PublishAsync(byte[] message, CancellationToken cancellationToken) => Inner.PublishAsync(message, cancellationToken);

    public virtual Task<IAsyncDisposable> SubscribeAsync(Action<byte[]> onMessage, Action<bool> onSubscribed, CancellationToken cancellationToken) =>
        Inner.SubscribeAsync(onMessage, onSubscribed, cancellationToken);
}
