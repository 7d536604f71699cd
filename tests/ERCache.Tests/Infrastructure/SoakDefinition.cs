namespace ERCache.Tests.Infrastructure;

/// <summary>
/// The one collection of tests on real threads and the real clock (hammers bounded by iterations, thread-pool
/// starvation, the system clock). It runs alone, after the parallel collections, so nothing else shares the cores or
/// the process-wide thread-pool settings with it; every other test drives time with <c>FakeTimeProvider</c> and
/// ordering with <c>ManualInferenceDispatcher</c>.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SoakDefinition
{
    public const string Name = "Soak: real threads and clocks";
}
