using Microsoft.Extensions.Time.Testing;
// ERCache quick start: two models configured in appsettings.json, a small user tower per model behind a fault
// switch (ERCache.Testing's FaultInjectingInference: a share of calls fail, every call takes some model latency),
// and bursts of concurrent traffic replayed on a simulated clock (half an hour of traffic runs in seconds).
// Prints, per model, how many requests each source served, why inference failed, and how old the served vectors were.
//
//   dotnet run --project samples/ERCache.QuickStart
//   dotnet run --project samples/ERCache.QuickStart -- --QuickStart:FailureRate=0.3
using ERCache;
using ERCache.QuickStart;
using ERCache.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
var settings = builder.Configuration.GetSection("QuickStart");
int users = settings.GetValue("Users", 5000);
int requests = settings.GetValue("Requests", 100_000);
var traffic = TimeSpan.FromMinutes(settings.GetValue("TrafficMinutes", 30.0));
double failureRate = settings.GetValue("FailureRate", 0.1);
int burst = settings.GetValue("BurstSize", 40);
var modelLatency = TimeSpan.FromMilliseconds(settings.GetValue("ModelLatencyMs", 20.0));
int seed = settings.GetValue("Seed", 42);
if (users < 1 || requests < 1 || burst < 1 || traffic <= TimeSpan.Zero || failureRate is < 0 or > 1 || modelLatency < TimeSpan.Zero)
{
    Console.Error.WriteLine($"Invalid QuickStart settings: Users={users}, Requests={requests}, BurstSize={burst}, TrafficMinutes={traffic.TotalMinutes}, " +
                            $"FailureRate={failureRate} (must be in 0..1), ModelLatencyMs={modelLatency.TotalMilliseconds}.");
    return 2;
}

// The simulated clock: the cache reads time only through TimeProvider, so replaying on a manual clock is exact.
var clock = new FakeTimeProvider();
builder.Services.AddSingleton<TimeProvider>(clock);

var cacheBuilder = builder.Services.AddERCache();
var models = builder.Configuration.GetSection("ERCache:Models").GetChildren().Select(s => s.Key).ToArray();
foreach (var (model, i) in models.Select((m, i) => (m, i)))
{
    int dimensions = builder.Configuration.GetValue<int>($"ERCache:Models:{model}:Dimensions");
    var faults = new FaultSettings { ErrorRate = failureRate, Latency = FaultSettings.Uniform(modelLatency, modelLatency / 2) };
    cacheBuilder.AddModel(model, new FaultInjectingInference(new UserTower(dimensions, seed + i), faults, clock, seed + 100 + i));
}

using var host = builder.Build();
await host.StartAsync(); // validates ERCache options (ValidateOnStart)
var cache = host.Services.GetRequiredService<IEmbeddingCache>();
var ercache = host.Services.GetRequiredService<EmbeddingCache>();

Console.WriteLine($"ERCache quick start: {requests:N0} requests from {users:N0} users over {traffic.TotalMinutes:0} simulated minutes, " +
                  $"in bursts of {burst} concurrent requests; {failureRate:P0} of inference calls failing, ~{modelLatency.TotalMilliseconds:0} ms model latency; " +
                  $"models: {string.Join(", ", models)}.");

var stats = models.ToDictionary(m => m, _ => new ModelStats());
var rng = new Random(seed);
var step = traffic * burst / requests;
var pending = new List<(string Model, Task<EmbeddingResult> Result)>(burst);
for (int sent = 0; sent < requests; sent += burst)
{
    clock.Advance(step);

    // A burst of concurrent requests; skewed popularity: a few users come back often, most rarely.
    pending.Clear();
    for (int b = 0; b < burst && sent + b < requests; b++)
    {
        long user = (long)(users * Math.Pow(rng.NextDouble(), 3));
        var model = models[rng.Next(models.Length)];
        pending.Add((model, cache.GetAsync(model, user, new float[ercache.GetPolicy(model).Dimensions]).AsTask()));
    }

    // Let simulated time pass in 5 ms steps until every request of the burst is answered (model latency and
    // deadlines play out on the simulated clock; a short real wait lets the thread pool run the calls).
    var all = Task.WhenAll(pending.Select(p => p.Result));
    while (!all.IsCompleted)
    {
        await Task.WhenAny(all, Task.Delay(1));
        if (!all.IsCompleted)
        {
            clock.Advance(TimeSpan.FromMilliseconds(5));
        }
    }

    foreach (var (model, result) in pending)
    {
        stats[model].Add(await result);
    }
}

foreach (var model in models)
{
    var policy = ercache.GetPolicy(model);
    Console.WriteLine();
    Console.WriteLine($"{model} (dimensions {policy.Dimensions}, direct TTL {policy.Direct.Ttl}, failover TTL {policy.Failover.Ttl}):");
    stats[model].Print();
    Console.WriteLine($"  entries: direct {ercache.GetTierStatistics(model, TierKind.Direct)?.Count ?? 0:N0}, failover {ercache.GetTierStatistics(model, TierKind.Failover)?.Count ?? 0:N0}");
}

await host.StopAsync();
return 0;

/// <summary>Counts per source and the ages of what was served.</summary>
internal sealed class ModelStats
{
    private readonly Dictionary<EmbeddingSource, List<double>> _ages = Enum.GetValues<EmbeddingSource>().ToDictionary(s => s, _ => new List<double>());
    private readonly Dictionary<InferenceFailureCause, int> _causes = [];
    private int _total;

    public void Add(EmbeddingResult result)
    {
        _ages[result.Source].Add(result.Age.TotalSeconds);
        if (result.FailureCause != InferenceFailureCause.None)
        {
            _causes[result.FailureCause] = _causes.GetValueOrDefault(result.FailureCause) + 1;
        }

        _total++;
    }

    public void Print()
    {
        Console.WriteLine($"  {"source",-9} {"requests",9} {"share",7} {"age p50",9} {"age p90",9} {"age p99",9}");
        foreach (var source in new[] { EmbeddingSource.Direct, EmbeddingSource.Fresh, EmbeddingSource.Failover, EmbeddingSource.Fallback })
        {
            var ages = _ages[source];
            ages.Sort();
            // A fallback serves no cached vector (zeros, or the model's DefaultVector), so it has no age to show.
            bool aged = source != EmbeddingSource.Fallback;
            Console.WriteLine($"  {source,-9} {ages.Count,9:N0} {(double)ages.Count / _total,7:P1} {Age(ages, 0.5, aged),9} {Age(ages, 0.9, aged),9} {Age(ages, 0.99, aged),9}");
        }

        int inferences = _total - _ages[EmbeddingSource.Direct].Count;
        Console.WriteLine($"  inference failures by cause: {(_causes.Count == 0 ? "none" : string.Join(", ", _causes.OrderBy(c => c.Key).Select(c => $"{c.Key} {c.Value:N0}")))}");
        Console.WriteLine($"  inference skipped for {(double)_ages[EmbeddingSource.Direct].Count / _total:P1} of requests ({inferences:N0} of {_total:N0} went on to inference, coalesced or shed)");
    }

    private static string Age(List<double> sorted, double q, bool aged) =>
        sorted.Count == 0 || !aged ? "-" : $"{sorted[Math.Min(sorted.Count - 1, (int)(q * sorted.Count))]:0.0}s";
}
