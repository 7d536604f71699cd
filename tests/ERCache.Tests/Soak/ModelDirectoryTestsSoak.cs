using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>The real-thread test of <see cref="ModelDirectoryTests"/>.</summary>
[Collection(SoakDefinition.Name)]
public sealed class ModelDirectoryTestsSoak
{
    [Fact]
    public async Task Threads_asking_by_name_through_reloads_get_only_their_models_settings_and_their_users_vectors()
    {
        // Eight models of different dimensions, so a request resolved to another model fails on its buffer's length. The
        // cache is built by the first caller while the reloads run: one landing between the options' binding and the
        // cache's subscription used to be lost (the final version read v2 in five runs of five).
        const int Models = 8;
        string Name(int m) => $"model_{m}";
        string Config(int generation) => ConfiguredHost.Json(string.Join(",", Enumerable.Range(0, Models).Select(m =>
            ConfiguredHost.Model(Name(m), dimensions: 4 + m, version: $"{Name(m)}-v{generation}"))));
        using var host = new ConfiguredHost(Config(0));
        string[] shared = [.. Enumerable.Range(0, Models).Select(Name)]; // the same instances on every thread

        var callers = Enumerable.Range(0, 4).Select(thread => Task.Run(async () =>
        {
            int wrong = 0, failed = 0, calls = 0;
            for (int i = 0; i < 3_000; i++)
            {
                int m = (i + thread) % Models;
                string name = (i % 3) switch
                {
                    0 => shared[m],
                    1 => new string(Name(m).AsSpan()), // a new instance: found by lookup
                    _ => Name(m).ToUpperInvariant(),
                };
                long user = i % 40;
                var vector = new float[4 + m];
                try
                {
                    var result = await host.Cache.GetAsync(name, user, vector);
                    calls++;
                    if (!result.ModelVersion.StartsWith(Name(m) + "-v", StringComparison.Ordinal) || (result.HasVector && !TestTower.BelongsTo(vector, user)))
                    {
                        wrong++;
                    }
                }
                catch (ArgumentException)
                {
                    failed++; // resolved to a model of other dimensions
                }
            }

            return (wrong, failed, calls);
        })).ToArray();

        for (int generation = 1; generation <= 6; generation++)
        {
            host.Reload(Config(generation));
            await Task.Yield();
        }

        var outcomes = await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(120));

        Assert.All(outcomes, o => Assert.Equal((0, 0, 3_000), o));
        Assert.Equal($"{Name(3)}-v6", host.Cache.GetPolicy(shared[3]).Version);
    }
}
