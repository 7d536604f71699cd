using ERCache.Testing;

namespace ERCache.Tests.Infrastructure;

/// <summary>The in-memory store, whose first <paramref name="failures"/> subscription attempts throw (a store down at
/// start-up).</summary>
internal sealed class FailingSubscriptions(InMemoryRegionalStore inner, int failures) : WrappedRegionalStore(inner)
{
    private int _attempts;

    /// <summary>Subscription attempts so far.</summary>
    public int Attempts => Volatile.Read(ref _attempts);

    public override Task<IAsyncDisposable> SubscribeAsync(Action<byte[]> onMessage, Action<bool> onSubscribed, CancellationToken cancellationToken) =>
        Interlocked.Increment(ref _attempts) <= failures
            ? Task.FromException<IAsyncDisposable>(new IOException("store down"))
            : Inner.SubscribeAsync(onMessage, onSubscribed, cancellationToken);
}
