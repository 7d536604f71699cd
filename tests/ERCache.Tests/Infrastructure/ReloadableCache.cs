using ERCache.Inference;
using ERCache.Regional;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests.Infrastructure;

/// <summary>A cache on a <see cref="ManualOptionsMonitor"/>, so that the test raises each reload on its own thread;
/// on a fake clock, with what it logs collected. Built off the synchronization context (see
/// <see cref="TestThread"/>).</summary>
internal sealed class ReloadableCache : IAsyncDisposable, IDisposable
{
    /// <param name="options">The options the cache is built with.</param>
    /// <param name="inference">Each model's inference by name; a new <see cref="TestTower"/> for any name when
    /// null.</param>
    /// <param name="clock">The clock; a new fake one when null.</param>
    /// <param name="dispatcher">The dispatcher; the cache's default when null.</param>
    /// <param name="store">A regional store, if any.</param>
    public ReloadableCache(
        ERCacheOptions options, Func<string, IEmbeddingInference?>? inference = null, FakeTimeProvider? clock = null,
        InferenceDispatcher? dispatcher = null, IRegionalStore? store = null)
    {
        Monitor = new ManualOptionsMonitor(options);
        Clock = clock ?? new FakeTimeProvider();
        TestThread.LeaveSynchronizationContext(); // the cache reacts inside each step (see TestThread)
        Cache = new EmbeddingCache(
            Monitor, inference ?? (_ => new TestTower()),
            new EmbeddingCacheServices { TimeProvider = Clock, Dispatcher = dispatcher, RegionalStore = store, Logger = new FakeLogger<EmbeddingCache>(Logs) });
    }

    public ManualOptionsMonitor Monitor { get; }

    public FakeTimeProvider Clock { get; }

    public FakeLogCollector Logs { get; } = new();

    public EmbeddingCache Cache { get; }

    /// <summary>Reloads <paramref name="options"/>, as a changed configuration would.</summary>
    public void Reload(ERCacheOptions options) => Monitor.Raise(options);

    /// <summary>The messages logged so far with event <paramref name="eventId"/>.</summary>
    public string[] Logged(int eventId) => [.. Logs.GetSnapshot().Where(r => r.Id.Id == eventId).Select(r => r.Message)];

    public void Dispose() => Cache.Dispose();

    public ValueTask DisposeAsync() => Cache.DisposeAsync();
}
